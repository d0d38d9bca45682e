"""Batched inference over windows: device, dtype, progress, scores.

:func:`fuse_iter` checks the input (:mod:`~xfusion_bluesky.fusion.inputs`), plans
every reference frame's window, builds the method's fuser from the registry
(:mod:`~xfusion_bluesky.fusion.methods`) and returns a
:class:`~xfusion_bluesky.fusion.stream.FusionStream` of fused frames in time
order. :func:`fuse` collects the stream into a
:class:`~xfusion_bluesky.structures.FusionResult`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from xfusion_bluesky import __version__
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.adaptation import (
    AdaptationReport,
    AdaptSettings,
    adapt_network,
)
from xfusion_bluesky.fusion.inputs import (
    check_frame_pair,
    check_options,
    sequence_range,
)
from xfusion_bluesky.fusion.methods import DEFAULT_METHOD, method_spec
from xfusion_bluesky.fusion.model.edvr_stf import EDVR, SCALE
from xfusion_bluesky.fusion.model.loader import load_network
from xfusion_bluesky.fusion.normalization import PERCENTILES
from xfusion_bluesky.fusion.precision import HALF_DTYPES, default_dtype
from xfusion_bluesky.fusion.stream import FusionStream, padding, to_unit
from xfusion_bluesky.fusion.windows import (
    check_hr_index,
    normalize_attention,
    plan_windows,
)
from xfusion_bluesky.structures import FusionResult, WindowPlan

__all__ = ["FusionStream", "default_batch_size", "fuse", "fuse_iter"]

logger = logging.getLogger(__name__)

#: LR pixels per batch the default batch size aims at, and its cap, per device type.
#: Measured on CPU: one 100×256 window of the small model peaks at ~0.7 GB (~28 kB
#: per LR pixel, most of it the pure-PyTorch deformable convolution's sampling
#: tensors), and batching brings no speed-up there, so a CPU batch stays under
#: ~1 GB. The paper-size model needs ~4× per pixel; 128 k pixels (5 windows of
#: 100×256) stays well inside a GPU's memory while filling its cores.
_BATCH_PIXELS = {"cpu": 32_768, "cuda": 131_072}
_MAX_BATCH = {"cpu": 4, "cuda": 16}


def default_batch_size(lr_height: int, lr_width: int, device: torch.device) -> int:
    """Return the default windows per batch for LR frames of ``lr_height × lr_width``.

    About 32 k LR pixels per batch on a CPU (1 … 4 windows; LR 100×256 → 1) and
    128 k on CUDA (1 … 16 windows; 100×256 → 5): a CPU gains nothing from
    batching and a window of the small model costs ~28 kB per LR pixel, so this
    keeps a CPU batch under ~1 GB; see :data:`_BATCH_PIXELS`.
    """
    kind = "cuda" if device.type == "cuda" else "cpu"
    fits = _BATCH_PIXELS[kind] // max(lr_height * lr_width, 1)
    return int(min(max(fits, 1), _MAX_BATCH[kind]))


def fuse_iter(
    lr: ArrayLike,
    hr: ArrayLike,
    hr_index: ArrayLike,
    method: str = DEFAULT_METHOD,
    *,
    model: Any = None,
    lr_separation: int = 1,
    normalize: bool = True,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    progress: bool = False,
    dtype: torch.dtype | None = None,
    channels_last: bool | None = None,
    hr_passthrough: bool = True,
    adapt: AdaptSettings | None = None,
    feature_cache: bool = True,
) -> FusionStream:
    """Check the input and return a stream of fused frames in time order.

    Takes the same arguments as :func:`fuse`; the input is checked (and the model
    loaded) here, before the first frame is asked for.

    Returns
    -------
    FusionStream
        Iterates over ``(t, frame, scores)``: ``t`` the reference frame 0 … T − 1 in
        order, ``frame`` (4h, 4w) float32, ``scores`` a
        :class:`~xfusion_bluesky.structures.FrameScores`. Its ``params``,
        ``model_id`` and ``plan`` are set before the first frame;
        ``params["batch_size"]`` drops when a batch runs out of memory and is
        retried in halves (never re-yielding a frame).
    """
    method, dev, batch_size = check_options(method, device, dtype, batch_size)
    dtype, channels_last = _precision(method, dev, dtype, channels_last)
    lr_arr, hr_arr = check_frame_pair(lr, hr)
    t, h, w = lr_arr.shape
    index = check_hr_index(hr_index, t, num_hr=hr_arr.shape[0])
    plan = plan_windows(t, index, lr_separation=lr_separation)
    normalize = bool(normalize)
    ranges = (
        sequence_range(lr_arr, "lr", normalize),
        sequence_range(hr_arr, "hr", normalize),
    )
    adaptation = None
    if adapt is not None:
        model, adaptation = _adapted(
            method, model, lr_arr, hr_arr, index, ranges, adapt, plan, dev, progress
        )
    fuser = method_spec(method).create(
        model, device=dev, dtype=dtype, channels_last=channels_last
    )
    batch = batch_size or default_batch_size(h, w, dev)
    pad_h, pad_w, pad_mode = padding(h, w, fuser.size_multiple)
    params: dict[str, Any] = {
        "method": method,
        "lr_separation": plan.lr_separation,
        "hr_index": index.tolist(),
        "normalize": normalize,
        "percentiles": list(PERCENTILES) if normalize else None,
        "lr_range": list(ranges[0]) if ranges[0] else None,
        "hr_range": list(ranges[1]) if ranges[1] else None,
        "lr_shape": list(lr_arr.shape),
        "hr_shape": list(hr_arr.shape),
        "padding": {"bottom": pad_h, "right": pad_w, "mode": pad_mode},
        "output_clip": [0.0, 1.0],
        "fuser": fuser.config,
        "device": str(dev),
        "dtype": str(dtype or torch.float32).removeprefix("torch."),
        "channels_last": channels_last,
        "batch_size": batch,
        "hr_passthrough": bool(hr_passthrough),
        "versions": {"xfusion_bluesky": __version__, "torch": torch.__version__},
    }
    if adaptation is not None:
        params["adaptation"] = adaptation.to_dict()
    if not feature_cache:
        # Recorded only when off: the result is the same either way, and the
        # default must keep the parameters (hence the derived run's key) of before.
        params["feature_cache"] = False
    logger.info(
        "fusing %d frames %dx%d -> %dx%d with %s on %s, %d HR frames, batch %d",
        t,
        h,
        w,
        SCALE * h,
        SCALE * w,
        method,
        dev,
        index.size,
        batch,
    )
    return FusionStream(
        lr_arr,
        hr_arr,
        plan,
        fuser,
        ranges=ranges,
        device=dev,
        batch_size=batch,
        progress=progress,
        params=params,
        hr_passthrough=bool(hr_passthrough),
        feature_cache=bool(feature_cache),
    )


def _adapted(
    method: str,
    model: Any,
    lr: NDArray[Any],
    hr: NDArray[Any],
    hr_index: NDArray[np.int64],
    ranges: tuple[tuple[float, float] | None, tuple[float, float] | None],
    settings: AdaptSettings,
    plan: WindowPlan,
    device: torch.device,
    progress: bool,
) -> tuple[EDVR, AdaptationReport]:
    """Return the network to fuse with after adapting it to this sequence, and why."""
    if not isinstance(settings, AdaptSettings):
        raise TypeError(
            f"adapt must be an AdaptSettings or None; got {type(settings).__name__}"
        )
    if not method_spec(method).trainable:
        raise InvalidInputError(
            f"adapt needs a network method to fine-tune; {method!r} has no weights"
        )
    network, _ = load_network(method, model, device=device)
    if network is None:  # trainable methods always load one
        raise InvalidInputError(f"method {method!r} has no network to adapt")
    # Adapt in the space the network sees: the same [0, 1] scaling as the windows.
    return adapt_network(
        network,
        to_unit(lr, ranges[0]),
        to_unit(hr, ranges[1]),
        hr_index,
        settings=settings,
        lr_separation=plan.lr_separation,
        device=device,
        progress=progress,
    )


def _precision(
    method: str, dev: torch.device, dtype: torch.dtype | None, channels_last: Any
) -> tuple[torch.dtype | None, bool]:
    """Resolve ``fuse()``'s default precision and memory format."""
    if dtype is None and method_spec(method).network is not None:
        dtype = default_dtype(dev)
    if channels_last is None:
        # oneDNN's and cuDNN's bf16 convolutions are fastest channels-last (another
        # 1.3× on this CPU); float32 keeps the layout its golden outputs pin.
        channels_last = dtype in HALF_DTYPES
    return dtype, bool(channels_last)


def fuse(
    lr: ArrayLike,
    hr: ArrayLike,
    hr_index: ArrayLike,
    method: str = DEFAULT_METHOD,
    *,
    model: Any = None,
    lr_separation: int = 1,
    normalize: bool = True,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    progress: bool = False,
    dtype: torch.dtype | None = None,
    channels_last: bool | None = None,
    hr_passthrough: bool = True,
    adapt: AdaptSettings | None = None,
    feature_cache: bool = True,
) -> FusionResult:
    """Fuse an LR sequence with the sparse HR frames into HR frames at every instant.

    Parameters
    ----------
    lr : array_like, (T, h, w) real
        LR (UHS) frames in time order; any real dtype, any intensity scale when
        ``normalize`` is True. Never modified.
    hr : array_like, (K, 4h, 4w) real
        HR (HS) frames, registered to the LR field of view. Never modified.
    hr_index : array_like, (K,) int
        Sorted, distinct LR frame index (0 … T − 1) at which each HR frame was taken.
    method : {"edvr_stf_detail", "edvr_stf", "edvr", "bicubic", "bayesian"}
        Fusion method, a name in the registry
        (:data:`~xfusion_bluesky.fusion.methods.METHODS`); default
        :data:`~xfusion_bluesky.fusion.methods.DEFAULT_METHOD`, EDVR-STF with its
        HR-detail head (``"edvr_stf"`` is the paper's network as published).
    model : str, path, EDVR/EDVRSTF module, BayesianSettings or None
        Weights for the network methods: a checkpoint path (or shipped model name),
        a built module (not modified), or None for the shipped default. Must be
        None for ``"bicubic"``; None or a
        :class:`~xfusion_bluesky.fusion.baselines.BayesianSettings` for
        ``"bayesian"``.
    lr_separation : int
        s, LR frames ``t − s, t, t + s`` form a window (1 … 3, < T).
    normalize : bool
        True: clip LR and HR each at their 0.35 / 99.65 percentiles over the whole
        sequence and min-max to [0, 1] (the paper's pre-processing); the output is
        mapped back to the HR input's intensity scale. False: ``lr`` and ``hr``
        must already lie in [0, 1] and the output stays there.
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, …
    batch_size : int, optional
        Windows per forward pass; default :func:`default_batch_size`. Memory grows
        with it, not with T; the result does not depend on it. A batch that runs
        out of memory is retried in halves (a WARNING each time) down to one
        window; ``params["batch_size"]`` reports the size finally used.
    progress : bool
        Show a tqdm progress bar on stderr.
    dtype : torch.dtype, optional
        ``torch.bfloat16`` / ``torch.float16``: autocast, with the deformable
        convolutions' sampling kept in float32; ``torch.float64``: a float64 copy
        of the model. Results are float32 either way. None: the device's default
        for network methods (:func:`~xfusion_bluesky.fusion.precision.default_dtype`:
        bfloat16 on CUDA and on CPUs with native bfloat16, else float32), float32
        for the others. ``params["dtype"]`` says which ran.
    channels_last : bool, optional
        Run the network in channels-last memory format. None: on with a half
        precision (faster there), off in float32 and float64.
    hr_passthrough : bool
        True (default): a reference frame with an HR frame taken at its own
        instant is that HR frame, exactly as given (``hr_passed_through``). False:
        the method's output there too.
    adapt : AdaptSettings, optional
        Fine-tune a copy of the network on this sequence's own HR frames before
        fusing (:func:`~xfusion_bluesky.fusion.adaptation.adapt_network`); the copy
        is used only where it beats the original on held-out HR frames.
        ``params["adaptation"]`` records the recipe, the held-out gain and the
        adapted weights' sha256. Network methods only.
    feature_cache : bool
        True (default): a network computes each frame's features (first
        convolution, extraction blocks, pyramid; the HR branch for HR frames)
        once per burst and reuses them in every window the frame takes part in
        (:mod:`~xfusion_bluesky.fusion.features`); bit for bit the same result in
        float64, within float32 rounding otherwise. False: every window from its
        frames (recorded as ``params["feature_cache"]``). Other methods ignore it.

    Returns
    -------
    FusionResult
        ``frames`` (T, 4h, 4w) float32, raw and normalised attention scores, the
        HR frames used and their flags, ``method``, ``model_id``, ``params``.

    Raises
    ------
    TypeError
        Non-real arrays, non-integer ``hr_index``/``lr_separation``, a model of
        the wrong class.
    InvalidInputError
        (a ValueError) wrong shapes, HR not 4× LR, bad ``hr_index``, NaN/inf,
        ``lr_separation`` outside 1 … 3 or ≥ T, unknown method, values outside
        [0, 1] with ``normalize=False``, ``adapt`` for a method without weights.
    FileNotFoundError
        ``model`` is None and the shipped weights do not exist.
    torch.OutOfMemoryError, MemoryError
        Even one window at a time does not fit.

    Notes
    -----
    Frame t is fused from LR ``[t − s, t, t + s]`` (clamped at the ends) and the
    latest HR frame at or before t and the earliest after it; before the first
    (after the last) HR frame the nearest HR frame on the other side stands in
    (``hr_before_substituted`` / ``hr_after_substituted``). LR sizes that are not
    multiples of 4 are padded (reflect, bottom/right) and cropped back. The fused
    frame is clipped to [0, 1] in normalised space, as the paper's output path does.
    ``"bayesian"`` ignores ``lr_separation``: it takes the LR frames at the
    instants of its two HR frames and at t (a ``PairedFuser``, see
    :mod:`~xfusion_bluesky.fusion.protocols`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> result = fuse(rng.random((5, 8, 8)), rng.random((2, 32, 32)), [0, 4],
    ...               method="bicubic")
    >>> result.frames.shape, result.hr_after.tolist()
    ((5, 32, 32), [1, 1, 1, 1, 1])
    """
    stream = fuse_iter(
        lr,
        hr,
        hr_index,
        method,
        model=model,
        lr_separation=lr_separation,
        normalize=normalize,
        device=device,
        batch_size=batch_size,
        progress=progress,
        dtype=dtype,
        channels_last=channels_last,
        hr_passthrough=hr_passthrough,
        adapt=adapt,
        feature_cache=feature_cache,
    )
    plan = stream.plan
    n = plan.num_frames
    frames = np.empty((n, *stream.frame_shape), dtype=np.float32)
    backward = np.full(n, np.nan)
    forward = np.full(n, np.nan)
    passed_through = np.zeros(n, dtype=bool)
    for t, frame, scores in stream:
        frames[t] = frame
        backward[t] = scores.backward_attention
        forward[t] = scores.forward_attention
        passed_through[t] = scores.passed_through
    normalized_backward, normalized_forward = normalize_attention(
        backward, forward, plan.hr_index
    )
    return FusionResult(
        frames=frames,
        backward_attention=backward,
        forward_attention=forward,
        normalized_backward_attention=normalized_backward,
        normalized_forward_attention=normalized_forward,
        hr_before=plan.hr_before.copy(),
        hr_after=plan.hr_after.copy(),
        hr_at_reference=plan.hr_at_reference.copy(),
        hr_before_substituted=plan.hr_before_substituted.copy(),
        hr_after_substituted=plan.hr_after_substituted.copy(),
        lr_clamped=plan.lr_clamped.copy(),
        hr_passed_through=passed_through,
        method=stream.method,
        model_id=stream.model_id,
        params=stream.params,
    )
