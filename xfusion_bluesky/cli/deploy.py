"""`xfusion-bluesky deploy`: the fusion and catch-up deployments on a Prefect work pool.

Run it once per facility (and again after an upgrade or a change of options):
it creates the work pool if needed and creates or updates both deployments.
The Prefect server is the one ``PREFECT_API_URL`` names. Then start one worker
per GPU; the command prints how.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xfusion_bluesky.cli.options import add_method_argument, add_model_argument, seconds

EPILOG = """\
examples:
  export PREFECT_API_URL=http://prefect-host:4200/api
  xfusion-bluesky deploy --tiled http://tiled-host:8000/api/v1
  # then on each GPU node, one worker per GPU (the key: the `fusion` role's):
  CUDA_VISIBLE_DEVICES=0 XFUSION_DEVICE=cuda XFUSION_FUSION_API_KEY=... \\
      prefect worker start --pool xfusion --limit 1 --name node1-gpu0

The acquisition side submits each run (XFUSION_FUSION=prefect in the profile, or
`xfusion-bluesky worker --tiled URL --prefect`); see docs/facility.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``deploy`` verb."""
    parser = subparsers.add_parser(
        "deploy",
        help="create or update the Prefect deployments that fuse runs at a facility",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--tiled",
        metavar="URI",
        help="the Tiled server the flows read and write, without an API key "
        "(default XFUSION_TILED_URL); the workers take the key from their "
        "environment (XFUSION_FUSION_API_KEY)",
    )
    parser.add_argument(
        "--pool", default="xfusion", help="Prefect work pool (default xfusion)"
    )
    parser.add_argument(
        "--name", default="xfusion", help="deployment name (default xfusion)"
    )
    add_method_argument(
        parser, help="fuse every run with this method (default: what each run asks for)"
    )
    add_model_argument(parser)
    parser.add_argument(
        "--catch-up-every-s",
        type=seconds,
        default=300.0,
        metavar="S",
        help="run the catch-up every S seconds (default 300)",
    )
    parser.add_argument(
        "--no-schedule",
        action="store_true",
        help="deploy the catch-up without a schedule (run it by hand)",
    )
    parser.add_argument(
        "--heartbeat-s",
        type=int,
        default=30,
        metavar="S",
        help="fusion flow runs send a heartbeat every S >= 30 seconds; the "
        "catch-up re-runs one silent for 3 periods; 0: no heartbeats (default 30)",
    )
    parser.add_argument(
        "--gpus",
        type=int,
        default=1,
        metavar="N",
        help="GPUs per node, for the worker commands printed (default 1; 0: CPU)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Deploy; print the deployments and the worker commands."""
    from xfusion_bluesky.catalog.lookup import server_address
    from xfusion_bluesky.orchestration.deploy import deploy, worker_commands

    uri, _ = server_address(args.tiled)
    # The workers read the weights: a path relative to here means nothing there.
    model = str(Path(args.model).expanduser().resolve()) if args.model else None
    deployed = deploy(
        uri,
        pool=args.pool,
        name=args.name,
        method=args.method,
        model=model,
        catch_up_every_s=None if args.no_schedule else args.catch_up_every_s,
        heartbeat_s=args.heartbeat_s or None,
    )
    print(f"deployed on work pool {deployed.pool!r}:")
    print(f"  {deployed.fuse}    (one flow run per raw run)")
    schedule = (
        "no schedule" if args.no_schedule else f"every {args.catch_up_every_s:g} s"
    )
    print(f"  {deployed.catch_up}    ({schedule})")
    print("start one worker per GPU, with the fusion role's Tiled API key in")
    print("XFUSION_FUSION_API_KEY:")
    for command in worker_commands(deployed.pool, args.gpus):
        print(f"  {command}")
    return 0
