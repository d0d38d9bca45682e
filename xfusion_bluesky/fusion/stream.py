"""Stream of fused frames: gather a batch, fuse it, yield its frames; halve on OOM.

:class:`FusionStream` is what :func:`~xfusion_bluesky.fusion.engine.fuse_iter`
returns. Each batch's tensors are gathered from the input arrays on the fly
(normalised, padded to the fuser's size multiple, moved to the device), so memory
grows with the batch size and not with the number of frames. For a network
(:class:`~xfusion_bluesky.fusion.protocols.FeatureFuser`) each frame is gathered
and its features computed once per burst instead, in a
:class:`~xfusion_bluesky.fusion.features.FeatureCache`. A batch that runs out of
memory is retried in halves; frames already yielded are never fused again.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F
from tqdm import tqdm

from xfusion_bluesky.fusion.features import FeatureCache, FrameKind
from xfusion_bluesky.fusion.model.edvr_stf import SCALE
from xfusion_bluesky.fusion.normalization import denormalize, normalize_percentile
from xfusion_bluesky.fusion.protocols import (
    FeatureFuser,
    FusedBatch,
    Fuser,
    PairedFuser,
)
from xfusion_bluesky.structures import FrameScores, WindowPlan

__all__ = ["FusionStream", "padding", "to_unit"]

logger = logging.getLogger(__name__)

_Item = tuple[int, NDArray[np.float32], FrameScores]
#: Fused frames and their backward/forward scores of one batch, on the CPU.
_Fused = tuple[NDArray[np.float32], NDArray[Any], NDArray[Any]]


class FusionStream(Iterator[_Item]):
    """Fused frames in time order, as ``(t, frame, scores)``; made by ``fuse_iter``.

    Parameters
    ----------
    lr, hr : ndarray, (T, h, w) and (K, 4h, 4w)
        The checked input stacks (read, never modified).
    plan : WindowPlan
        Every reference frame's window.
    fuser : Fuser
        The method, built for this call.
    ranges : (lr range, hr range)
        Percentile bounds to normalise with, or None where the input is in [0, 1].
    device : torch.device
        Where the batches go.
    batch_size : int
        Windows per batch to start with; halved after an out-of-memory error.
    progress : bool
        Show a tqdm bar on stderr.
    params : dict
        The run's parameters; ``params["batch_size"]`` is kept up to date.
    hr_passthrough : bool
        Where the reference frame has an HR frame of its own instant, yield that
        HR frame (the input, in its own intensity scale) instead of the method's
        output. The method still runs there: its backward score at the HR
        frame's instant is the normaliser of the attention scores.
    feature_cache : bool
        For a :class:`~xfusion_bluesky.fusion.protocols.FeatureFuser`, compute
        each frame's features once and reuse them in every window (same result);
        False: every window from its frames, as other methods are fused.

    Attributes
    ----------
    method : str
    model_id : str or None
    plan : WindowPlan
    params : dict
        Everything needed to reproduce the run (JSON-serialisable);
        ``batch_size`` is the batch size finally used.
    frame_shape : (int, int)
        (4h, 4w), the fused frame size.
    """

    def __init__(
        self,
        lr: NDArray[Any],
        hr: NDArray[Any],
        plan: WindowPlan,
        fuser: Fuser,
        *,
        ranges: tuple[tuple[float, float] | None, tuple[float, float] | None],
        device: torch.device,
        batch_size: int,
        progress: bool,
        params: dict[str, Any],
        hr_passthrough: bool = True,
        feature_cache: bool = True,
    ) -> None:
        self.method = fuser.name
        self.model_id = fuser.model_id
        self.plan = plan
        self.params = params
        self.frame_shape = (SCALE * lr.shape[1], SCALE * lr.shape[2])
        self._lr, self._hr, self._fuser = lr, hr, fuser
        self._lr_range, self._hr_range = ranges
        self._device = device
        self._batch_size = batch_size
        self._progress = progress
        self._passthrough = plan.hr_at_reference & bool(hr_passthrough)
        self._cached: tuple[FeatureFuser, FeatureCache] | None = None
        if (
            feature_cache
            and isinstance(fuser, FeatureFuser)
            and not isinstance(fuser, PairedFuser)
        ):
            cache = FeatureCache(
                plan, fuser.frame_features, self._frames_of, uses_hr=fuser.uses_hr
            )
            self._cached = (fuser, cache)
        self._frames = self._run()

    def __next__(self) -> _Item:
        return next(self._frames)

    def close(self) -> None:
        """Stop early and release the progress bar."""
        self._frames.close()

    def _lr_rows(self, refs: NDArray[np.int64]) -> NDArray[np.int64]:
        """Return the LR frames of each window, (b, 3).

        ``[t − s, t, t + s]``, or for a :class:`PairedFuser` the instants
        ``[t_a, t, t_b]`` of the HR frames before and after and of the reference.
        """
        if not isinstance(self._fuser, PairedFuser):
            return self.plan.lr_indices[refs]
        index = self.plan.hr_index
        before, after = (
            index[self.plan.hr_before[refs]],
            index[self.plan.hr_after[refs]],
        )
        return np.stack([before, refs, after], 1)

    def _frames_of(self, kind: FrameKind, index: NDArray[np.int64]) -> torch.Tensor:
        """Gather, normalise and pad LR or HR frames ``index``, (n, 1, H, W)."""
        stack, bounds, scale = (
            (self._lr, self._lr_range, 1)
            if kind == "lr"
            else (self._hr, self._hr_range, SCALE)
        )
        frames = to_unit(stack[index.ravel()], bounds)  # a copy
        tensor = torch.from_numpy(frames).to(self._device)[:, None]
        # Each frame is padded on its own, so a frame gathered for one window
        # or for the feature cache gets the same values.
        height, width = self._lr.shape[1:]
        pad_h, pad_w, mode = padding(height, width, self._fuser.size_multiple)
        if pad_h or pad_w:
            pad = (0, scale * pad_w, 0, scale * pad_h)
            tensor = F.pad(tensor, pad, mode=mode)
        return tensor

    def _batch(self, refs: NDArray[np.int64]) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather, normalise and pad the LR and HR tensors of frames ``refs``."""
        b = refs.size
        lr = self._frames_of("lr", self._lr_rows(refs))  # (b·3, 1, h, w)
        hr_pick = np.stack([self.plan.hr_before[refs], self.plan.hr_after[refs]], 1)
        hr = self._frames_of("hr", hr_pick)  # (b·2, 1, 4h, 4w)
        return lr.view(b, 3, *lr.shape[1:]), hr.view(b, 2, *hr.shape[1:])

    def _fused_batch(self, refs: NDArray[np.int64]) -> FusedBatch:
        """Run the method on the windows of reference frames ``refs``."""
        if self._cached is not None:
            fuser, cache = self._cached
            out = fuser.fuse_features(*cache.window_features(refs))
            cache.release(through=int(refs[-1]))
            return out
        lr, hr = self._batch(refs)
        if isinstance(self._fuser, PairedFuser):
            rows = torch.from_numpy(self._lr_rows(refs))
            return self._fuser.fuse_pairs(lr, hr, rows)
        return self._fuser.fuse_batch(lr, hr)

    def _fuse(self, refs: NDArray[np.int64]) -> _Fused:
        """Fuse reference frames ``refs``; return frames in the HR scale and scores."""
        height, width = self.frame_shape
        with torch.inference_mode():
            out = self._fused_batch(refs)
            fused = out.fused[:, 0, :height, :width].float().cpu().numpy()
            backward = out.backward_attention.float().cpu().numpy()
            forward = out.forward_attention.float().cpu().numpy()
        frames = np.ascontiguousarray(fused, dtype=np.float32)
        if self._hr_range is not None:
            frames = denormalize(frames, *self._hr_range)
        for i, t in enumerate(refs.tolist()):
            if self._passthrough[t]:
                frames[i] = self._hr[self.plan.hr_before[t]]
        return frames, backward, forward

    def _fuse_or_halve(self, refs: NDArray[np.int64]) -> _Fused | None:
        """Fuse ``refs``, or after running out of memory halve the batch size.

        Returns None when the batch should be retried smaller; re-raises the
        out-of-memory error when ``refs`` is a single frame.
        """
        try:
            return self._fuse(refs)
        except (torch.OutOfMemoryError, MemoryError):
            if refs.size <= 1:
                raise
        self._batch_size = refs.size // 2
        self.params["batch_size"] = self._batch_size
        logger.warning(
            "out of memory fusing frames %d-%d with %s: retrying them %d at a time",
            refs[0],
            refs[-1],
            self.method,
            self._batch_size,
        )
        if self._device.type == "cuda":
            torch.cuda.empty_cache()  # give the failed batch's blocks back
        return None

    def _run(self) -> Generator[_Item]:
        """Fuse batch after batch and yield frame after frame."""
        n = self.plan.num_frames
        bar = tqdm(
            total=n,
            desc=f"fuse {self.method}",
            unit="frame",
            file=sys.stderr,
            disable=not self._progress,
        )
        start = time.perf_counter()
        first = 0  # the first frame not yet yielded
        try:
            while first < n:
                refs = np.arange(first, min(first + self._batch_size, n))
                tick = time.perf_counter()
                fused = self._fuse_or_halve(refs)
                if fused is None:
                    continue
                frames, backward, forward = fused
                logger.debug(
                    "frames %d-%d fused in %.3f s",
                    first,
                    refs[-1],
                    time.perf_counter() - tick,
                )
                for i, t in enumerate(refs.tolist()):
                    scores = FrameScores(
                        float(backward[i]),
                        float(forward[i]),
                        self.plan.window(t),
                        passed_through=bool(self._passthrough[t]),
                    )
                    yield t, frames[i], scores
                    bar.update(1)
                first += refs.size
            elapsed = time.perf_counter() - start
            logger.info(
                "fused %d frames with %s in %.1f s (%.4f s/frame)",
                n,
                self.method,
                elapsed,
                elapsed / n,
            )
        finally:
            bar.close()


def padding(height: int, width: int, multiple: int) -> tuple[int, int, str]:
    """Return the bottom and right padding to a multiple of ``multiple``, and its mode.

    Reflect padding needs the pad to be smaller than the frame; frames of 1-3 pixels
    fall back to replicating the edge.
    """
    pad_h, pad_w = -height % multiple, -width % multiple
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return pad_h, pad_w, mode


def to_unit(
    frames: NDArray[Any], bounds: tuple[float, float] | None
) -> NDArray[np.float32]:
    """Return float32 frames in [0, 1]: percentile-normalised, or cast when in range.

    Parameters
    ----------
    frames : ndarray
        LR or HR frames in their input scale.
    bounds : (float, float) or None
        The sequence's percentile bounds; None when the input already lies in [0, 1].
    """
    if bounds is None:
        return frames.astype(np.float32, copy=False)
    return normalize_percentile(frames, *bounds)
