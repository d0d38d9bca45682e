"""Recordings made before → `ingest` → a raw run the worker fuses like any other.

The recordings are the simulation's: a fast-front event on a 96×96 grid field,
seen by a UHS of 24×24 px (binned 4×, 2 MHz, 24 frames) and an HS of 80×80 px
mounted with a known, deliberately misaligned similarity (ratio 4.1, 0.7°, a
sub-pixel offset) at 250 kHz. Two pairs: TIFF + TIFF, registered with
`xfusion-bluesky register` from a static-target pair, then ingested by the CLI;
and a TIFF UHS + a Phantom .cine HS (longer than the UHS burst, with its own
trigger 2 µs late), ingested by the library. Both are fused and checked against
the event's truth on the fused grid.
"""

from pathlib import Path

import numpy as np
import pytest
from recordings import write_cine, write_tiff
from system_helpers import load_by_path

from xfusion_bluesky.catalog.connect import open_catalogs
from xfusion_bluesky.catalog.progress import pending_runs
from xfusion_bluesky.cli.main import main
from xfusion_bluesky.devices.sim import SimEvent
from xfusion_bluesky.devices.sim.targets import render_target
from xfusion_bluesky.geometry import Similarity, resample
from xfusion_bluesky.ingest import (
    ingest_recordings,
    read_registration,
    registration_block,
    write_registration,
)
from xfusion_bluesky.metrics import psnr
from xfusion_bluesky.pipeline import fuse_run
from xfusion_bluesky.stored_format import FORMAT_VERSION
from xfusion_bluesky.synthetic.degradation import bin_frames

pytestmark = pytest.mark.slow

UHS_SHAPE, HS_SHAPE = (24, 24), (80, 80)
FIELD = (4 * UHS_SHAPE[0], 4 * UHS_SHAPE[1])
UHS_RATE, HS_RATE, UHS_FRAMES = 2e6, 250e3, 24
MOUNT = Similarity(HS_SHAPE, scale_ratio=4.1, rotation_deg=0.7, offset_hr_px=(6.3, 5.6))
EVENT = SimEvent("fast_front", seed=11)


def event_frames(uhs_times, hs_times):
    """The UHS and HS counts of the event at those times (s), and the truth."""
    truth = EVENT.render(uhs_times, FIELD, seed=EVENT.seed)
    uhs = np.rint(bin_frames(truth, 4) * 1023).astype(np.uint16)
    seen = EVENT.render(hs_times, FIELD, seed=EVENT.seed)
    hs = np.stack([resample(frame, MOUNT.matrix(), HS_SHAPE) for frame in seen])
    return uhs, np.rint(np.clip(hs, 0, 1) * 4095).astype(np.uint16), truth


def documented_keys():
    """docs/format.md's key tables, read by the format test's own parser."""
    path = Path(__file__).resolve().parents[1] / "catalog" / "test_format_v1.py"
    return load_by_path(path, "format_tables")


def scan_registration_keys():
    """The keys of the registration block dual_camera_scan writes."""
    from xfusion_bluesky.devices.base import HS_SPEC, UHS_SPEC, BurstSettings
    from xfusion_bluesky.plans.metadata import (
        CameraRecord,
        RegistrationRecord,
        registration_metadata,
    )

    uhs = CameraRecord(
        "uhs", UHS_SPEC, BurstSettings(2e6, 1e-7, 128, (0, 0, 16, 24)), 0, 32.0
    )
    hs = CameraRecord(
        "hs", HS_SPEC, BurstSettings(1e5, 1e-6, 8, (0, 0, 64, 96)), 0, 8.0
    )
    return registration_metadata(RegistrationRecord(), uhs, hs)


def static_target(folder):
    """A static-target recording pair (TIFF), a little noisy, 4 frames each."""
    field = render_target("static", np.zeros(1), FIELD, seed=4)[0]
    rng = np.random.default_rng(4)
    seen = (
        np.repeat(bin_frames(field[None], 4) * 1000, 4, axis=0),
        np.repeat(resample(field, MOUNT.matrix(), HS_SHAPE)[None] * 4000, 4, axis=0),
    )
    uhs, hs = (
        np.clip(np.rint(a + rng.normal(0, 2.0, a.shape)), 0, 4095).astype(np.uint16)
        for a in seen
    )
    return write_tiff(folder / "target_uhs.tif", uhs), write_tiff(
        folder / "target_hs.tif", hs
    )


@pytest.fixture
def folder(hdf5_dir, request):
    """A folder in the session server's readable storage, one per test."""
    path = hdf5_dir / "recordings" / request.node.name
    path.mkdir(parents=True)
    return path


def check_fused(tiled, uid, truth, *, method, hs_at):
    """Fuse ``uid``; check the frames lie on the fused grid and match the truth."""
    fused = fuse_run(tiled.raw, uid, method=method)
    assert fused.status == "success", fused.reason
    record = fused.fusion["registration"]
    y0, x0, height, width = record["grid_window"]
    frames = np.asarray(fused.frames, dtype=np.float64)
    assert frames.shape == (UHS_FRAMES, height, width)
    assert min(height, width) >= 60  # most of the HS field
    (burst,) = fused.outcome["bursts"]
    assert burst["hr_index"] == hs_at
    expected = truth[:, y0 : y0 + height, x0 : x0 + width] * 4095
    scores = [psnr(frames[t], expected[t], data_range=4095) for t in range(UHS_FRAMES)]
    return fused, np.asarray(scores)


def test_a_tiff_pair_is_registered_ingested_and_fused(tiled, folder, server, capsys):
    # 1. The registration, from a static target, with the verb a user runs.
    target_uhs, target_hs = static_target(folder)
    registration = folder / "registration.json"
    argv = ["register", "--uhs", str(target_uhs), "--hs", str(target_hs)]
    assert main([*argv, "-o", str(registration)]) == 0
    measured = Similarity.from_metadata(read_registration(registration))
    assert measured.point_rms_hr_px(MOUNT) < 0.2

    # 2. The event: UHS without times in its file, HS with its rate in the header.
    uhs_times = np.arange(UHS_FRAMES) / UHS_RATE
    hs_times = np.arange(3) / HS_RATE
    uhs, hs, truth = event_frames(uhs_times, hs_times)
    uhs_path = write_tiff(folder / "shot_uhs.tif", uhs)
    hs_path = write_tiff(folder / "shot_hs.tif", hs, frame_rate_hz=HS_RATE)
    capsys.readouterr()
    argv = ["ingest", "--uhs", str(uhs_path), "--hs", str(hs_path)]
    argv += ["--uhs-rate", "2e6", "--registration", str(registration), *server]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    uid = printed.split("raw run", 1)[1].split()[0]
    assert "UHS          24 × 24×24 px at 2e+06 Hz (times from the options)" in printed
    assert "hr_separation 8 LR frame periods" in printed

    # 3. One raw run, in the scans' format, referencing the files.
    run = tiled.raw[uid]
    start = run.start
    assert start["plan_name"] == "ingest"
    assert start["xfusion_format"] == FORMAT_VERSION
    assert start["fusion"]["requested"] is True
    assert start["num_points"] == 1
    assert run.metadata["stop"]["exit_status"] == "success"
    assert start["registration"]["measured_by"] == "register:target_uhs.tif"
    assert start["registration"]["scale_ratio"] == pytest.approx(measured.scale_ratio)
    assert start["timing"]["hr_separation"] == pytest.approx(8.0)
    for role, path in (("uhs", uhs_path), ("hs", hs_path)):
        source = start["ingest"][role]
        assert source["path"] == str(path)
        assert source["format"] == "tiff"
        assert source["converted"] is True
        assert source["stored_path"] == f"{path}.h5"
        assert source["size_bytes"] == path.stat().st_size
    assert start["ingest"]["uhs"]["frame_times_from"] == "options"
    assert start["ingest"]["hs"]["frame_times_from"] == "header"
    primary = run["primary"]
    np.testing.assert_array_equal(primary["uhs_image"].read()[0], uhs)
    np.testing.assert_array_equal(primary["hs_image"].read()[0], hs)
    np.testing.assert_allclose(primary["hs_frame_times_s"].read()[0], hs_times)
    # Every start-document key is documented, and every key a scan's raw run
    # must have is there, but those a RunEngine adds; the registration block
    # has the scans' keys (their own format test checks those against the doc).
    format_tables = documented_keys()
    tables = format_tables.documented()
    table = {
        **tables["Raw run (`dual_camera_scan`) / Start document"],
        **tables["Changes in version 3 / Ingested runs (`plan_name: ingest`)"],
        "registration": False,
    }
    table = {k: v for k, v in table.items() if not k.startswith("registration.")}
    for key in ("versions", "scan_id", "plan_type"):
        table[key] = True
    format_tables.check(dict(start), table, "ingested start")
    assert set(start["registration"]) == set(scan_registration_keys())
    # A running worker's catch-up finds it like any other finished run.
    assert uid in pending_runs(open_catalogs(tiled.client))

    # 4. Fused: frames on the fused grid, the truth's content.
    fused, scores = check_fused(tiled, uid, truth, method="bicubic", hs_at=[0, 8, 16])
    assert fused.raw_uid == uid
    assert scores.min() > 20.0, scores
    assert uid not in pending_runs(open_catalogs(tiled.client))


def test_a_cine_hs_and_a_tiff_uhs_are_ingested_and_fused(tiled, folder):
    # The HS trigger came 2 µs after the UHS's; its file holds 6 frames from 8 µs
    # before its trigger (pre-trigger frames), 3 of them within the UHS burst.
    delay = 2e-6
    uhs_times = np.arange(UHS_FRAMES) / UHS_RATE
    cine_times = (np.arange(6) - 2) / HS_RATE
    uhs, hs, truth = event_frames(uhs_times, delay + cine_times)
    uhs_path = write_tiff(folder / "shot_uhs.tif", uhs, frame_times_s=uhs_times)
    hs_path = write_cine(
        folder / "shot_hs.cine", hs, frame_rate_hz=HS_RATE, frame_times_s=cine_times
    )
    registration = write_registration(
        folder / "registration.json",
        registration_block(MOUNT, UHS_SHAPE, measured_by="test: the sim's mount"),
    )
    uid = ingest_recordings(
        tiled.client,
        uhs_path,
        hs_path,
        registration=registration,
        hs_delay_s=delay,
        md={"sample": "fast front"},
    )
    start = tiled.raw[uid].start
    assert start["sample"] == "fast front"
    assert start["ingest"]["hs"]["format"] == "cine"
    assert start["ingest"]["hs"]["frames"] == [2, 5]  # only those in the burst
    assert start["ingest"]["hs"]["frame_times_from"] == "header"
    assert start["ingest"]["uhs"]["frame_times_from"] == "header"
    assert start["hs"]["frames_per_burst"] == 3
    assert start["hs"]["bit_depth"] == 12  # the .cine header's real_bpp
    primary = tiled.raw[uid]["primary"]
    assert primary["hs_image"].shape == (1, 3, *HS_SHAPE)
    np.testing.assert_array_equal(primary["hs_image"].read()[0], hs[2:5])
    np.testing.assert_allclose(
        primary["hs_frame_times_s"].read()[0], [2e-6, 6e-6, 10e-6], atol=1e-9
    )

    # The method the run requested (edvr_stf_detail): the HS frames lift the fused
    # frames well above the UHS alone, which needs the registration right.
    fused, scores = check_fused(tiled, uid, truth, method=None, hs_at=[4, 12, 20])
    assert fused.method == "edvr_stf_detail"
    _, baseline = check_fused(tiled, uid, truth, method="bicubic", hs_at=[4, 12, 20])
    # At the HS instants both give the HS frames themselves (the pass-through).
    np.testing.assert_array_equal(scores[[4, 12, 20]], baseline[[4, 12, 20]])
    between = np.setdiff1d(np.arange(UHS_FRAMES), [4, 12, 20])
    assert scores[between].mean() > baseline[between].mean() + 3.0, (scores, baseline)
