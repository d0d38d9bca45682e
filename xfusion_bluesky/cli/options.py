"""Options several verbs share, defined once: same name, default, metavar and help.

Not a verb: the verbs import this module and the library, never each other.
Metavars say what a value is: ``UID`` a run uid (a unique prefix works), ``URI``
a server, ``PATH`` a file or folder, ``N`` a count, ``S`` seconds, ``METHOD`` a
registered fusion method, ``DEVICE`` a torch device. Everything that imports
torch or tiled happens inside functions, so ``xfusion-bluesky --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

__all__ = [
    "DEVICE_DEFAULT",
    "MethodChoices",
    "add_batch_size_argument",
    "add_device_argument",
    "add_method_argument",
    "add_model_argument",
    "add_threads_argument",
    "add_tiled_arguments",
    "open_from_args",
    "positive_int",
    "resolve_device",
    "seconds",
]

#: The one default of ``--device`` in every verb that runs a network.
DEVICE_DEFAULT = "auto"
DEVICE_HELP = (
    "where the network runs: auto (cuda when torch sees a GPU, else cpu), cpu, "
    "cuda, cuda:1, ... (default auto)"
)


class MethodChoices:
    """The registered fusion methods, as argparse ``choices``, read when first needed.

    The registry imports torch; building every verb's parser must not (it runs
    for ``--help`` too). argparse only tests membership when it parses a value
    and lists the choices when it prints that verb's help or an error.

    Parameters
    ----------
    trainable : bool
        Only the methods that have a network to train.
    """

    def __init__(self, *, trainable: bool = False) -> None:
        self.trainable = trainable

    def _names(self) -> tuple[str, ...]:
        from xfusion_bluesky.fusion.methods import METHODS

        return tuple(
            name
            for name, spec in METHODS.items()
            if spec.trainable or not self.trainable
        )

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"MethodChoices(trainable={self.trainable})"


def positive_int(text: str) -> int:
    """Parse a count ≥ 1 (argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1; got {text!r}")
    return value


def seconds(text: str) -> float:
    """Parse a duration in seconds ≥ 0 (argparse ``type``)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds ≥ 0; got {text!r}")
    return value


def add_device_argument(parser: Any) -> None:
    """Add ``--device DEVICE`` (default ``auto``; see :func:`resolve_device`)."""
    parser.add_argument(
        "--device", default=DEVICE_DEFAULT, metavar="DEVICE", help=DEVICE_HELP
    )


def resolve_device(name: str) -> str:
    """Return the torch device ``--device`` names: ``auto`` → cuda if present, else cpu.

    Raises
    ------
    InvalidInputError
        Torch does not know the device.
    """
    import torch

    from xfusion_bluesky.errors import InvalidInputError

    if name == DEVICE_DEFAULT:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(name)
    except RuntimeError as err:
        raise InvalidInputError(
            f"--device must be auto, cpu, cuda or cuda:N; got {name!r}"
        ) from err
    return name


def add_method_argument(
    parser: Any,
    *,
    help: str,
    default: str | None = None,
    trainable: bool = False,
    nargs: str | None = None,
) -> None:
    """Add ``--method METHOD`` with the registry's names as choices.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
        Where the option goes.
    help : str
        What the method is used for and what the default means; the choices
        are appended.
    default : str, optional
        None: the verb decides (the run's request, or the registry's first).
    trainable : bool
        Only methods with a network (``MethodSpec.trainable``).
    nargs : str, optional
        ``"+"`` for ``--methods`` (several); the flag is then plural.
    """
    flag = "--methods" if nargs else "--method"
    parser.add_argument(
        flag,
        default=default,
        nargs=nargs,
        choices=MethodChoices(trainable=trainable),
        metavar="METHOD",
        help=f"{help}; one of %(choices)s",
    )


def add_model_argument(parser: Any) -> None:
    """Add ``--model PATH``: weights for the network methods."""
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="weights (.pth) for edvr_stf or edvr (default: the shipped ones)",
    )


def add_batch_size_argument(parser: Any) -> None:
    """Add ``--batch-size N``: fusion windows per forward pass."""
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="windows per forward pass (default: by frame size; halved after an "
        "out-of-memory error)",
    )


def add_adapt_arguments(parser: Any) -> None:
    """Add ``--adapt``, ``--adapt-iterations N`` and ``--adapt-seconds S``."""
    parser.add_argument(
        "--adapt",
        action="store_true",
        help="fine-tune a copy of the network on each burst's own HS frames before "
        "fusing it; kept only where it beats the shipped weights on held-out HS "
        "frames (recorded in the derived run)",
    )
    parser.add_argument(
        "--adapt-iterations",
        type=positive_int,
        metavar="N",
        help="fine-tuning steps per burst (implies --adapt; default: the recipe's)",
    )
    parser.add_argument(
        "--adapt-seconds",
        type=seconds,
        metavar="S",
        help="time budget of the fine-tuning per burst (implies --adapt)",
    )


def adapt_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """Return the ``AdaptSettings`` fields the adapt options ask for; None: off."""
    if not (args.adapt or args.adapt_iterations or args.adapt_seconds):
        return None
    options: dict[str, Any] = {}
    if args.adapt_iterations:
        options["iterations"] = args.adapt_iterations
    if args.adapt_seconds:
        options["time_budget_s"] = args.adapt_seconds
    return options


def add_threads_argument(parser: Any, *, default: int | None = None) -> None:
    """Add ``--threads N``: torch's CPU threads."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=default,
        metavar="N",
        help="torch CPU threads (default "
        + ("torch's choice" if default is None else str(default))
        + ")",
    )


def add_tiled_arguments(parser: Any, *, api_key_note: str = "") -> None:
    """Add ``--tiled URI`` and ``--api-key KEY`` (defaults: the environment).

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
        Where the options go.
    api_key_note : str
        Appended to the ``--api-key`` help (what access the verb needs).
    """
    parser.add_argument(
        "--tiled",
        metavar="URI",
        help="Tiled server, e.g. http://host:8000/api/v1 (default XFUSION_TILED_URL)",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="its API key (default XFUSION_TILED_API_KEY; the environment keeps it "
        "out of `ps`)" + api_key_note,
    )


def open_from_args(args: argparse.Namespace, *, create: bool) -> tuple[Any, str]:
    """Open the server ``--tiled``/``--api-key`` (or the environment) name.

    Parameters
    ----------
    args : argparse.Namespace
        With ``tiled`` and ``api_key`` (see :func:`add_tiled_arguments`).
    create : bool
        Create missing run containers (needs write access).

    Returns
    -------
    Catalogs, str
        The root, raw and fused containers; the server URI (for messages).
    """
    from xfusion_bluesky.catalog.lookup import open_server

    return open_server(args.tiled, args.api_key, create=create)
