"""`xfusion-bluesky evaluate`: the paper's comparisons regenerated in one command.

Fuses held-out synthetic x-ray sequences (and the real validation radiographs from
``data/``) with every registered method (EDVR-STF, EDVR, bicubic, Bayesian)
over LR noise levels, HR separations and LR separations, times every
method at the paper's frame size, and writes ``results.csv``, ``summary.json``,
``report.md`` and the figures (Figs. 5–8, S2–S5 types) to ``--out``. Rerun with
the same ``--out`` to resume. With ``--lr/--hr/--hr-index`` it evaluates a
recording of yours instead (scored against ``--truth`` when given), and with
``--uid UID --tiled URI`` a fused run from Tiled (a simulated run against the
truth its start document lets us render).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from xfusion_bluesky.cli.options import (
    add_device_argument,
    add_method_argument,
    add_threads_argument,
    add_tiled_arguments,
    open_from_args,
    positive_int,
    resolve_device,
)


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


def _hr_separation(text: str) -> int:
    """Parse an HR separation: LR frame periods ≥ 1, or ``ends`` (first and last)."""
    if text.lower() in ("ends", "first-last"):
        return 0
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected LR frame periods ≥ 1, or 'ends'; got {text!r}"
        )
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``evaluate`` verb."""
    parser = subparsers.add_parser(
        "evaluate",
        help="compare the fusion methods over noise, HR and LR separation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller data, every figure: 2 families × 1 seed, 21 frames of 64x96",
    )
    parser.add_argument(
        "--out",
        default="evaluation",
        metavar="PATH",
        help="output folder (default evaluation)",
    )
    parser.add_argument(
        "--scenes",
        nargs="+",
        metavar="FAMILY",
        help="scene families (default additive_manufacturing friction_stir fast_front)",
    )
    add_method_argument(
        parser, nargs="+", help="methods to compare (default: every one)"
    )
    add_device_argument(parser)
    parser.add_argument(
        "--seeds",
        type=positive_int,
        metavar="N",
        help="held-out seeds per family (default 3)",
    )
    parser.add_argument(
        "--frames",
        type=positive_int,
        metavar="N",
        help="LR frames per sequence (default 41)",
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
        "--hr-separation",
        type=_hr_separation,
        nargs="+",
        metavar="N",
        help="HR separations of the HR sweeps, in LR frame periods; 'ends': first "
        "and last frame only (default 2 10 20 ends)",
    )
    parser.add_argument(
        "--lr-separation",
        type=int,
        choices=(1, 2, 3),
        nargs="+",
        metavar="N",
        help="LR separations of the HR sweeps: 1, 2 or 3 (default 1 2 3)",
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
        metavar="PATH",
        help="folder with savu_i13_projections/, or 'none' to skip the real "
        "radiographs (not shipped; default $XFUSION_VALIDATION, else skipped)",
    )
    parser.add_argument(
        "--timing-size",
        type=_size,
        metavar="HxW",
        help="LR size of the speed comparison (default 100x256, the paper's)",
    )
    parser.add_argument("--no-timing", action="store_true", help="skip Fig. 8")
    # On a busy 2-core host two threads made the small networks 3-20× slower.
    add_threads_argument(parser, default=1)
    user = parser.add_argument_group("your own recording")
    user.add_argument(
        "--lr", metavar="PATH", help="LR frames (.npy .npz .h5 .tif), (T, h, w)"
    )
    user.add_argument("--hr", metavar="PATH", help="HR frames, 4× the LR size")
    user.add_argument(
        "--hr-index",
        nargs="+",
        metavar="N",
        help="LR frame of each HR frame, or a PATH holding them",
    )
    user.add_argument("--truth", metavar="PATH", help="truth at every LR instant")
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
    changes: dict[str, Any] = {"device": resolve_device(args.device)}
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
    if args.radiographs is not None:
        none = args.radiographs.lower() == "none"
        changes["radiographs"] = None if none else Path(args.radiographs)
    if args.no_timing:
        changes["timing_lr_shape"] = None
    elif args.timing_size:
        changes["timing_lr_shape"] = args.timing_size
    plan = config.plan
    for option, name in (
        ("noise_db", "noise_db"),
        ("hr_separation", "hr_separations"),
        ("lr_separation", "lr_separations"),
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
            lr_separations=tuple(args.lr_separation or (1,)),
        )
    return replace(config, **changes)


def _files_from_tiled(args: argparse.Namespace) -> tuple[str, str, list[str], Any]:
    """Save burst 0 of run ``--uid`` (and a sim's truth) as .npy files under --out.

    The LR and HR frames are the raw frames on the common field, exactly as the
    fusion worker registered them; the truth exists only for simulated runs.
    """
    from xfusion_bluesky.catalog import fetch_fused
    from xfusion_bluesky.catalog.burst import load_burst

    catalogs, _ = open_from_args(args, create=False)
    try:
        burst = load_burst(fetch_fused(catalogs, args.uid), 0)
        paths = burst.save_inputs(Path(args.out) / "tiled_input")
    finally:
        catalogs.root.context.close()
    truth = str(paths["truth"]) if "truth" in paths else None
    return str(paths["lr"]), str(paths["hr"]), [str(paths["hr_index"])], truth


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
