"""One cached model loader: a method and ``model=...`` in, a checked network out.

:func:`load_network` is the only place that turns what a caller passes as
``model`` (None for the shipped weights, a checkpoint path, a built module) into
the network of a method, checks its class against the method's
:class:`~xfusion_bluesky.fusion.methods.MethodSpec`, and describes it for
provenance. Files are loaded once per (resolved path, device, modification time)
and shared, so a worker fusing run after run, an evaluation sweep and ``fuse()``
calls all reuse one network.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.model import checkpoint
from xfusion_bluesky.fusion.model.edvr_stf import EDVR

if TYPE_CHECKING:
    from xfusion_bluesky.fusion.methods import MethodSpec

__all__ = ["LoadedModel", "clear_cache", "default_model_path", "load_network"]

logger = logging.getLogger(__name__)

#: LR frames per window of every network method: ``t − s, t, t + s``.
WINDOW_LR_FRAMES = 3

_cache: dict[tuple[str, str, int], EDVR] = {}
_lock = threading.Lock()


class LoadedModel(NamedTuple):
    """A method's network and what provenance records of it.

    Attributes
    ----------
    network : EDVR, EDVRSTF or None
        In eval mode; None for a method without weights. A network loaded from a
        file is shared with every other caller that loads the same file: copy it
        (``copy.deepcopy``) before training or otherwise changing it.
    info : dict
        ``name`` (file stem), ``path`` (as given), ``sha256`` (of the weights)
        and ``config`` (``{"class": ..., **network.config}``); for a method
        without weights ``{"name": None, "sha256": None, "config": None}``.
    """

    network: EDVR | None
    info: dict[str, Any]


def _spec(method: str) -> MethodSpec:
    """Return the registry entry of ``method``."""
    # The registry builds its fusers on this loader, so it is imported on use.
    from xfusion_bluesky.fusion.methods import method_spec

    return method_spec(method)


def default_model_path(method: str) -> Path:
    """Return the path of the shipped weights of ``method`` (under ``models/``).

    Raises
    ------
    InvalidInputError
        An unknown method, or one without weights (``"bicubic"``, ...).
    """
    spec = _spec(method)
    if spec.default_weights is None:
        raise InvalidInputError(
            f"method {method!r} has no shipped weights; methods with weights: "
            f"{[name for name, s in _registry().items() if s.default_weights]}"
        )
    return checkpoint.MODELS_DIR / spec.default_weights


def _registry() -> dict[str, MethodSpec]:
    """Return every registered method by name."""
    from xfusion_bluesky.fusion.methods import METHODS

    return METHODS


def load_network(
    method: str,
    model: str | os.PathLike[str] | torch.nn.Module | None = None,
    *,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Return the network of ``method`` from ``model``, checked and described.

    Parameters
    ----------
    method : str
        A registered method name (:data:`~xfusion_bluesky.fusion.methods.METHODS`).
    model : str, path, EDVR/EDVRSTF module or None
        None: the method's shipped weights under ``models/``. A str or path: a
        ``.pth`` checkpoint, ours or the authors' (or a shipped model's name,
        ``"edvr_small"``). A module: used as is, not copied or moved. Must be
        None for a method without weights.
    device : str or torch.device
        Where a network loaded from a file is placed.

    Returns
    -------
    LoadedModel
        The network (shared with other callers when loaded from a file) and its
        provenance ``info``.

    Raises
    ------
    InvalidInputError
        Unknown method; a model for a method without weights; a file holding
        another network class; a module that fuses other than 3 LR frames.
    TypeError
        ``model`` is neither None, a path nor an EDVR/EDVRSTF module, or a
        module of the wrong class.
    FileNotFoundError
        No such file, or ``model`` is None and the shipped weights are missing.
    CheckpointMismatchError
        The file's weights do not fit the architecture their shapes describe.
    """
    spec = _spec(method)
    if spec.network is None:
        if model is not None:
            raise InvalidInputError(
                f"method {method!r} takes no model; got model={model!r}: "
                "pass model=None"
            )
        return LoadedModel(None, {"name": None, "sha256": None, "config": None})
    if model is None:
        path = default_model_path(method)
        if not path.is_file():
            raise FileNotFoundError(
                f"no model given for method {method!r} and its default weights "
                f"{path} do not exist: make them with `xfusion-bluesky train`, pass "
                "model=<path to a .pth checkpoint>, or use method='bicubic'"
            )
        model = path
    if isinstance(model, str | os.PathLike):
        return _from_file(spec, model, torch.device(device))
    return _from_module(spec, model)


def _from_file(
    spec: MethodSpec, model: str | os.PathLike[str], device: torch.device
) -> LoadedModel:
    """Load (or reuse) the checkpoint ``model`` and check its class."""
    network = _load_file(Path(model), device)
    fitting = _method_of(network)
    if fitting != spec.name:
        raise InvalidInputError(
            f"model file {os.fspath(model)!r} holds a {type(network).__name__}, "
            f"but method {spec.name!r} needs a {_class_name(spec)}: pass "
            f"matching weights or method={fitting!r}"
        )
    sha256 = network.model_id or checkpoint.model_id(network)
    return LoadedModel(network, _info(network, Path(model), sha256))


def _from_module(spec: MethodSpec, model: object) -> LoadedModel:
    """Check a built module against ``spec`` and describe it."""
    if not isinstance(model, EDVR):
        raise TypeError(
            f"model must be a checkpoint path, an EDVR/EDVRSTF module or None; "
            f"got {type(model).__name__}"
        )
    fitting = _method_of(model)
    if fitting != spec.name:
        raise TypeError(
            f"method {spec.name!r} needs a {_class_name(spec)} model; got "
            f"{type(model).__name__}: use method={fitting!r}"
        )
    if model.num_frame != WINDOW_LR_FRAMES:
        raise InvalidInputError(
            f"model fuses {model.num_frame} LR frames; windows hold "
            f"{WINDOW_LR_FRAMES} (t − s, t, t + s): pass a model built with "
            f"num_frame={WINDOW_LR_FRAMES}"
        )
    # A module may have changed since it was loaded: hash what it holds now.
    source = Path(model.source) if model.source else None
    return LoadedModel(model, _info(model, source, checkpoint.model_id(model)))


def _class_name(spec: MethodSpec) -> str:
    """Return the name of the network class ``spec`` needs."""
    return spec.network.__name__ if spec.network is not None else "no network"


def _method_of(network: EDVR) -> str | None:
    """Return the method whose network class fits ``network`` most closely."""
    fitting = [
        spec
        for spec in _registry().values()
        if spec.network is not None and isinstance(network, spec.network)
    ]
    if not fitting:
        return None
    # EDVRSTF is an EDVR too: the most derived registered class wins.
    best = max(fitting, key=lambda spec: len(spec.network.__mro__))  # type: ignore[union-attr]
    return best.name


def _info(network: EDVR, path: Path | None, sha256: str) -> dict[str, Any]:
    """Return the provenance of ``network``, loaded from ``path`` (as given)."""
    return {
        "name": path.stem if path is not None else None,
        "path": os.fspath(path) if path is not None else None,
        "sha256": sha256,
        "config": {"class": type(network).__name__, **network.config},
    }


def _resolved(path: Path) -> Path:
    """Return the file ``path`` names, as :func:`checkpoint.load_model` finds it."""
    shipped = checkpoint.MODELS_DIR / f"{path}.pth"
    if not path.exists() and shipped.exists():
        return shipped.resolve()
    return path.resolve()


def _load_file(path: Path, device: torch.device) -> EDVR:
    """Return the network in ``path`` on ``device``, loading it once per version."""
    resolved = _resolved(path)
    try:
        mtime_ns = resolved.stat().st_mtime_ns
    except OSError:
        mtime_ns = -1  # missing: load_model raises the explanatory error
    key = (os.fspath(resolved), str(device), mtime_ns)
    with _lock:
        network = _cache.get(key)
        if network is None:
            network = checkpoint.load_model(path, device=device)
            stale = [k for k in _cache if k[:2] == key[:2]]
            for old in stale:  # an older version of the same file on this device
                del _cache[old]
            _cache[key] = network
        else:
            logger.debug("reusing %s loaded from %s on %s", key[0], path, device)
    return network


def clear_cache() -> None:
    """Forget every network loaded from a file (the next load reads the file)."""
    with _lock:
        _cache.clear()
