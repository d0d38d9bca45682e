"""`xfusion-bluesky evaluate`: the paper's comparisons regenerated in one command.

Fuses held-out synthetic x-ray sequences (and the real radiographs in
``../shared/data`` when present) with EDVR-STF, EDVR, bicubic and the Bayesian
fusion over LR noise levels, HR down-sampling and LR separations, times every
method at the paper's frame size, and writes ``results.csv``, ``summary.json``,
``report.md`` and the figures (Figs. 5–8, S2–S5 types) to ``--out``. Rerun with
the same ``--out`` to resume. With ``--lr/--hr/--hr-index`` it evaluates a
recording of yours instead (scored against ``--truth`` when given), and with
``--uid UID --tiled URL`` a fused run from Tiled (a simulated run against the
truth its start document lets us render).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from xfusion_bluesky.cli.fuse import add_tiled_arguments

#: Where the project keeps its validation data (relative to the working folder).
DEFAULT_RADIOGRAPHS = Path("..") / "shared" / "data"


def _size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (e.g. ``128x192``)."""
    try:
        height, width = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected HxW, e.g. 128x192; got {text!r}"
        ) from err
    return height, width


def _noise(text: str) -> float | None:
    """Parse a noise level: dB, or ``none``."""
    return None if text.lower() in ("none", "inf") else float(text)


def _hr_every(text: str) -> int:
    """Parse an HR spacing: LR frames, or ``ends`` (first and last only)."""
    return 0 if text.lower() in ("ends", "first-last") else int(text)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``evaluate`` verb."""
    parser = subparsers.add_parser(
        "evaluate",
        help="compare the fusion methods over noise, HR sampling and separation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller data, every figure: 2 families × 1 seed, 21 frames of 64x96",
    )
    parser.add_argument(
        "--out", default="evaluation", help="output folder (default: evaluation)"
    )
    parser.add_argument(
        "--scenes",
        nargs="+",
        metavar="FAMILY",
        help="scene families (default additive_manufacturing friction_stir fast_front)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        metavar="METHOD",
        help="methods (default edvr_stf edvr bicubic bayesian)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--seeds", type=int, help="held-out seeds per family (default 3)"
    )
    parser.add_argument(
        "--frames", type=int, help="LR frames per sequence (default 41)"
    )
    parser.add_argument(
        "--hr-size", type=_size, metavar="HxW", help="HR frame size (default 128x192)"
    )
    parser.add_argument(
        "--noise-db",
        type=_noise,
        nargs="+",
        metavar="DB",
        help="target LR image PSNR levels; 'none': no noise (default 20 30 40 50 "
        "60 none)",
    )
    parser.add_argument(
        "--hr-every",
        type=_hr_every,
        nargs="+",
        metavar="P",
        help="LR frames between HR frames; 'ends': first and last only (default "
        "2 10 20 ends)",
    )
    parser.add_argument(
        "--separations",
        type=int,
        nargs="+",
        metavar="S",
        help="LR separations of the HR sweeps (default 1 2 3)",
    )
    parser.add_argument(
        "--cluster-fractions",
        type=float,
        nargs="+",
        metavar="F",
        help="Bayesian cluster-number fractions (default 0.025 0.05 0.1 0.2 0.4 0.8)",
    )
    parser.add_argument(
        "--radiographs",
        default=str(DEFAULT_RADIOGRAPHS),
        metavar="DIR|none",
        help="folder with savu_i13_projections/ (default ../shared/data)",
    )
    parser.add_argument(
        "--timing-size",
        type=_size,
        metavar="HxW",
        help="LR size of the speed comparison (default 100x256, the paper's)",
    )
    parser.add_argument("--no-timing", action="store_true", help="skip Fig. 8")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a busy 2-core host two threads "
        "made the small networks 3-20× slower)",
    )
    user = parser.add_argument_group("your own recording")
    user.add_argument("--lr", metavar="FILE", help="LR frames (.npy .npz .h5 .tif)")
    user.add_argument("--hr", metavar="FILE", help="HR frames, 4× the LR size")
    user.add_argument(
        "--hr-index", nargs="+", metavar="T", help="LR frame of each HR frame, or FILE"
    )
    user.add_argument("--truth", metavar="FILE", help="truth at every LR instant")
    run_group = parser.add_argument_group("a run in Tiled (fused already)")
    run_group.add_argument(
        "--uid",
        metavar="UID",
        help="raw run to evaluate: its first burst, registered as the worker "
        "registered it; a simulated run is scored against its ground truth",
    )
    add_tiled_arguments(run_group)
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Turn the arguments into an EvaluationConfig."""
    from dataclasses import replace

    from xfusion_bluesky.evaluation.config import (
        EvaluationConfig,
        UserInput,
        quick_config,
    )
    from xfusion_bluesky.evaluation.datasets import HELD_OUT_SEED

    config = quick_config() if args.quick else EvaluationConfig()
    changes: dict[str, Any] = {"device": args.device}
    if args.scenes:
        changes["families"] = tuple(args.scenes)
    if args.methods:
        changes["methods"] = tuple(args.methods)
    if args.seeds:
        changes["seeds"] = tuple(HELD_OUT_SEED + 1 + i for i in range(args.seeds))
    if args.frames:
        changes["num_frames"] = args.frames
    if args.hr_size:
        changes["hr_shape"] = args.hr_size
    radiographs = args.radiographs
    changes["radiographs"] = (
        None if radiographs.lower() == "none" else Path(radiographs)
    )
    if args.no_timing:
        changes["timing_lr_shape"] = None
    elif args.timing_size:
        changes["timing_lr_shape"] = args.timing_size
    plan = config.plan
    for option, name in (
        ("noise_db", "noise_db"),
        ("hr_every", "hr_every"),
        ("separations", "lr_separations"),
        ("cluster_fractions", "cluster_fractions"),
    ):
        if getattr(args, option):
            values: dict[str, Any] = {name: tuple(getattr(args, option))}
            plan = replace(plan, **values)
    changes["plan"] = plan
    if args.uid:
        if args.lr or args.hr or args.hr_index:
            raise ValueError("give either --uid or --lr/--hr/--hr-index, not both")
        args.lr, args.hr, args.hr_index, args.truth = _files_from_tiled(args)
    given = [args.lr, args.hr, args.hr_index]
    if any(given) and not all(given):
        raise ValueError("a recording needs all of --lr, --hr and --hr-index")
    if all(given):
        index = args.hr_index
        hr_index = (
            index[0]
            if len(index) == 1 and not index[0].isdigit()
            else [int(v) for v in index]
        )
        changes["user"] = UserInput(
            args.lr,
            args.hr,
            hr_index,
            truth=args.truth,
            lr_separations=tuple(args.separations or (1,)),
        )
    return replace(config, **changes)


def _files_from_tiled(args: argparse.Namespace) -> tuple[str, str, list[str], Any]:
    """Save burst 0 of run ``--uid`` (and a sim's truth) as .npy files under --out.

    The LR and HR frames are the raw frames on the common field, exactly as the
    fusion worker registered them; the truth exists only for simulated runs.
    """
    import numpy as np

    from xfusion_bluesky.catalog import fetch_fused
    from xfusion_bluesky.cli.demo import ground_truth
    from xfusion_bluesky.cli.fuse import open_from_args
    from xfusion_bluesky.cli.show import load_burst

    catalogs, _ = open_from_args(args, create=False)
    try:
        burst = load_burst(fetch_fused(catalogs, args.uid), 0)
        files = {
            "lr": burst.lr,
            "hr": burst.hr[burst.hs_used],
            "hr_index": burst.hr_index,
        }
        if burst.raw_start.get("sim"):
            files["truth"] = ground_truth(burst)
    finally:
        catalogs.root.context.close()
    folder = Path(args.out) / "tiled_input"
    folder.mkdir(parents=True, exist_ok=True)
    truth = str(folder / "truth.npy") if "truth" in files else None
    for name, array in files.items():
        np.save(folder / f"{name}.npy", np.asarray(array))
    return (
        str(folder / "lr.npy"),
        str(folder / "hr.npy"),
        [str(folder / "hr_index.npy")],
        truth,
    )


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and print where the report is."""
    import torch

    from xfusion_bluesky.evaluation.runner import run_evaluation

    torch.set_num_threads(args.threads)
    config = _config(args)
    command = "xfusion-bluesky " + shlex.join(sys.argv[1:]) if sys.argv else "evaluate"
    summary = run_evaluation(config, args.out, command=command)
    out = Path(args.out)
    count, seconds = len(summary["sequences"]), summary["runtime_s"]
    print(f"evaluated {count} sequences in {seconds:.0f} s")
    marks = {True: "holds", False: "does not hold", None: "not testable"}
    for item in summary["findings"]:
        print(f"- {item['finding']}: {marks[item['holds']]}")
    print(f"report: {(out / 'report.md').resolve()}")
    return 0
