"""`xfusion-bluesky train`: train EDVR-STF or the LR-only EDVR on synthetic video."""

from __future__ import annotations

import argparse

from xfusion_bluesky.cli.options import (
    add_device_argument,
    add_method_argument,
    add_threads_argument,
    positive_int,
    resolve_device,
)


def _iterations(text: str) -> tuple[int, int]:
    """Parse ``PRE,FINE``: iterations of the two stages, each ≥ 0."""
    try:
        pre, fine = (int(v) for v in text.split(","))
    except ValueError:
        pre = fine = -1
    if pre < 0 or fine < 0:
        raise argparse.ArgumentTypeError(
            f"expected PRE,FINE (two counts ≥ 0, e.g. 400,2000); got {text!r}"
        )
    return pre, fine


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``train`` verb."""
    parser = subparsers.add_parser(
        "train",
        help="train a fusion model on generated x-ray scenes (resumable)",
        description=(
            "Train EDVR-STF (or the LR-only EDVR baseline) on synthetic x-ray video "
            "generated on the fly: first a pretraining stage on generic textures, "
            "then fine-tuning on the x-ray scene families. Run it again with the "
            "same --out to resume after an interruption."
        ),
    )
    add_method_argument(
        parser,
        trainable=True,
        default="edvr_stf",
        help="network to train (default edvr_stf)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="run folder: checkpoint, log.csv, loss.png, final.pth",
    )
    parser.add_argument(
        "--iterations",
        type=_iterations,
        default=(400, 2000),
        metavar="PRE,FINE",
        help="iterations of the pretraining and fine-tuning stages (default 400,2000)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=6,
        metavar="N",
        help="training windows per optimiser step (default 6)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=4e-4,
        metavar="RATE",
        help="Adam's starting rate in each stage, cosine-annealed to 1e-7 "
        "(default 4e-4, the paper's)",
    )
    parser.add_argument(
        "--lr-patch",
        type=positive_int,
        default=24,
        metavar="N",
        help="LR crop size in pixels (default 24)",
    )
    parser.add_argument(
        "--preset",
        choices=("small", "paper"),
        default="small",
        help="network size: small (CPU, shipped) or paper (20.9 M parameters; "
        "default small)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="data loader processes (default 1; 0: load in this process)",
    )
    add_device_argument(parser)
    add_threads_argument(parser)
    parser.add_argument(
        "--seed", type=int, default=10, metavar="N", help="random seed (default 10)"
    )
    parser.add_argument(
        "--init",
        default=None,
        metavar="PATH",
        help="start from these weights (e.g. a finished run's final.pth) instead of "
        "random ones; use --iterations 0,N to fine-tune only",
    )
    parser.add_argument(
        "--far-hr",
        type=float,
        default=0.0,
        metavar="P",
        help="share of windows with one HR frame 21-66 LR frames away, as at a "
        "5 MHz UHS camera beside a 76 kHz HS one (default 0: the paper's 1-20)",
    )
    parser.add_argument(
        "--decoy-hr",
        type=float,
        default=0.0,
        metavar="P",
        help="share of windows where one HR frame shows another scene (a mistimed "
        "HS frame) that the network must learn to ignore (default 0)",
    )
    parser.add_argument(
        "--gate-from",
        default=None,
        metavar="PATH",
        help="take TSA's temporal-attention convolutions from these weights (same "
        "network size), before --gate-init-scale",
    )
    parser.add_argument(
        "--gate-init-scale",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="scale TSA's temporal-attention convolutions by FACTOR at the start (e.g. "
        "0.1 with --init, to un-saturate a gate whose correlation is in the "
        "hundreds; default 1: unchanged)",
    )
    parser.add_argument(
        "--attention-loss",
        type=float,
        default=0.0,
        metavar="W",
        help="weight of a term that asks each HR frame's attention score to equal "
        "the share of its content that matches the reference instant (EDVR-STF "
        "only; default 0: the paper's Charbonnier loss alone)",
    )
    parser.add_argument(
        "--hr-at-reference",
        type=float,
        default=0.05,
        metavar="P",
        help="share of windows whose HR frame before is taken at the reference "
        "instant itself (default 0.05)",
    )
    parser.add_argument(
        "--max-hr-separation",
        type=positive_int,
        default=20,
        metavar="N",
        help="largest distance, in LR frames, of an HR frame from the reference "
        "(default 20)",
    )
    parser.add_argument(
        "--head-only",
        action="store_true",
        help="edvr_stf_detail only: train its HR-detail head, the EDVR-STF backbone "
        "(from --init) frozen",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train, then print where the weights are."""
    import torch

    from xfusion_bluesky.fusion.model.detail import DETAIL_CONFIG
    from xfusion_bluesky.fusion.model.edvr_stf import EDVRSTF, SMALL_CONFIG
    from xfusion_bluesky.synthetic.scene import XRAY_FAMILIES
    from xfusion_bluesky.training.trainer import Stage, TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    pre, fine = args.iterations
    model = (
        dict(SMALL_CONFIG)
        if args.preset == "small"
        else {k: v for k, v in EDVRSTF().config.items() if k not in ("num_frame_hi",)}
    )
    if args.method == "edvr_stf_detail":
        model |= DETAIL_CONFIG  # the HR-detail head's size, beside the backbone's
    stages = (
        Stage("pretrain", ("natural",), pre, args.learning_rate),
        Stage("finetune", XRAY_FAMILIES, fine, args.learning_rate),
    )
    config = TrainConfig(
        method=args.method,
        model=model,
        stages=tuple(stage for stage in stages if stage.iterations > 0),
        batch_size=args.batch_size,
        lr_patch=args.lr_patch,
        num_workers=args.workers,
        seed=args.seed,
        init_from=args.init,
        p_far_hr=args.far_hr,
        p_hr_decoy=args.decoy_hr,
        gate_from=args.gate_from,
        gate_init_scale=args.gate_init_scale,
        attention_loss_weight=args.attention_loss,
        p_hr_at_reference=args.hr_at_reference,
        max_hr_separation=args.max_hr_separation,
        train_head_only=args.head_only,
    )
    path = train(config, args.out, device=resolve_device(args.device))
    print(f"weights: {path}")
    return 0
