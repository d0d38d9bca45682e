"""The one simulated event both sim cameras image, and how each camera sees it.

The event is a seeded synthetic x-ray video (:func:`~xfusion_bluesky.synthetic.scene.
generate_scene`) over the UHS field at HR resolution (``4 × UHS ROI``: the fused
grid), or a calibration target (:mod:`~xfusion_bluesky.devices.sim.targets`). The
UHS sees it binned 4×; the HS sees it through its mount (:class:`HSMount`): a
window with flips when the mount is aligned (ratio 4, no rotation, whole-pixel
offset), else the field resampled through the mount's
:class:`~xfusion_bluesky.geometry.Similarity` (HS pixel ``(r, c)`` sees grid
position ``matrix · (r, c, 1)``, cubic). Each samples it at its own frame times
(plus its own trigger latency, applied by the camera), adds its own noise and
quantises to its own bit depth. The simulated cameras and the caproto IOC both
render through this module, so a burst is the same in both flavours.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xfusion_bluesky.devices.base import SCALE, CameraSpec
from xfusion_bluesky.devices.sim.mount import HSMount, random_mount
from xfusion_bluesky.devices.sim.targets import TARGETS, render_target
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.synthetic import scene as scene_module
from xfusion_bluesky.synthetic.degradation import bin_frames

__all__ = [
    "DEFAULT_FRAME_PERIOD_S",
    "FULL_SCALE_PHOTONS",
    "HSMount",
    "SimEvent",
    "random_mount",
]

#: Event time per scene frame: one frame of the 2 MHz default UHS burst.
DEFAULT_FRAME_PERIOD_S = 5e-7
#: Photons per pixel at full scale: the UHS (short, binned) is noisier than the HS.
FULL_SCALE_PHOTONS = {"uhs": 400.0, "hs": 4000.0}
#: Read noise, in ADC counts (rms).
READ_NOISE_COUNTS = {"uhs": 1.5, "hs": 2.0}
#: Scene frames rendered at once: bounds memory at full sensor (1000×1600 HR).
_CHUNK_FRAMES = 16
_CAMERA_STREAM = {"uhs": 1, "hs": 2}


@dataclass(frozen=True)
class SimEvent:
    """A seeded synthetic event over the UHS field.

    Attributes
    ----------
    family : str
        Scene family (``synthetic.scene.SCENE_FAMILIES``).
    seed : int
        Seed of the event; a burst ``k`` uses ``seed + k`` (see :meth:`burst_seed`).
    frame_period_s : float
        Event time per scene frame (the scene's motion speed).
    params : mapping
        Extra keyword arguments for ``generate_scene``.
    target : str
        What is in the beam: ``"event"`` (the scene, default), or a calibration
        target, ``"static"`` or ``"moving"`` (see
        :mod:`~xfusion_bluesky.devices.sim.targets`).
    """

    family: str = field(default_factory=lambda: scene_module.DEFAULT_FAMILY)
    seed: int = 0
    frame_period_s: float = DEFAULT_FRAME_PERIOD_S
    params: Mapping[str, Any] = field(default_factory=dict)
    target: str = "event"

    def __post_init__(self) -> None:
        families = getattr(scene_module, "SCENE_FAMILIES", (self.family,))
        if self.family not in families:
            raise InvalidInputError(
                f"scene family must be one of {tuple(families)}; got {self.family!r}"
            )
        if not self.frame_period_s > 0:
            raise InvalidInputError(
                f"frame_period_s must be > 0 s; got {self.frame_period_s!r}"
            )
        if self.target not in TARGETS:
            raise InvalidInputError(
                f"target must be one of {TARGETS}; got {self.target!r}"
            )

    def metadata(self, field_shape_hr: tuple[int, int]) -> dict[str, Any]:
        """Return what regenerates the ground truth: the start document's ``sim``.

        ``target`` is there only for a calibration target (an event run has none).
        """
        block: dict[str, Any] = {
            "scene_family": self.family,
            "scene_seed": int(self.seed),
            "scene_frame_period_s": float(self.frame_period_s),
            "scene_params": dict(self.params),
            "field_shape_hr": [int(v) for v in field_shape_hr],
        }
        if self.target != "event":
            block["target"] = self.target
        return block

    def render(
        self, times_s: np.ndarray, field_shape_hr: tuple[int, int], *, seed: int
    ) -> np.ndarray:
        """Return the ground truth at ``times_s``, float32 ``(t, H, W)`` in [0, 1]."""
        height, width = (int(v) for v in field_shape_hr)
        times = np.asarray(times_s, dtype=np.float64) / self.frame_period_s
        if self.target != "event":
            # A target is one object, whatever the burst: the scene's seed.
            return render_target(
                self.target, times, (height, width), seed=int(self.seed)
            )
        return np.asarray(
            scene_module.generate_scene(
                self.family,
                times=times,
                height=height,
                width=width,
                seed=int(seed),
                **dict(self.params),
            ),
            dtype=np.float32,
        )

    def uhs_burst(
        self,
        spec: CameraSpec,
        times_s: np.ndarray,
        frame_shape: tuple[int, int],
        *,
        seed: int,
    ) -> np.ndarray:
        """Render a UHS burst: the event binned 4×, noisy, quantised; uint16.

        The result is read-only and cached (see :func:`_cached`).
        """
        key = ("uhs", self._key(), _times_key(times_s), tuple(frame_shape), seed)
        return _cached(key, lambda: self._uhs_burst(spec, times_s, frame_shape, seed))

    def _key(self) -> tuple[Any, ...]:
        # Not self.seed: a burst depends on its own seed (passed in) only.
        params = tuple(sorted((k, repr(v)) for k, v in self.params.items()))
        return (self.family, self.frame_period_s, params, self.target)

    def _uhs_burst(
        self,
        spec: CameraSpec,
        times_s: np.ndarray,
        frame_shape: tuple[int, int],
        seed: int,
    ) -> np.ndarray:
        field_shape = (frame_shape[0] * SCALE, frame_shape[1] * SCALE)
        rng = np.random.default_rng([int(seed), _CAMERA_STREAM["uhs"]])
        out = np.empty((len(times_s), *frame_shape), dtype=np.uint16)
        for start in range(0, len(times_s), _CHUNK_FRAMES):
            stop = start + _CHUNK_FRAMES
            truth = self.render(times_s[start:stop], field_shape, seed=seed)
            out[start:stop] = digitize(bin_frames(truth, SCALE), spec, rng)
        return out

    def hs_burst(
        self,
        spec: CameraSpec,
        times_s: np.ndarray,
        frame_shape: tuple[int, int],
        *,
        field_shape_hr: tuple[int, int],
        mount: HSMount,
        seed: int,
    ) -> np.ndarray:
        """Render an HS burst: a mounted window of the event; uint16 (t, h, w).

        The result is read-only and cached (see :func:`_cached`).
        """
        key = (
            "hs",
            self._key(),
            _times_key(times_s),
            tuple(frame_shape),
            tuple(field_shape_hr),
            mount,
            seed,
        )
        return _cached(
            key,
            lambda: self._hs_burst(
                spec, times_s, frame_shape, field_shape_hr, mount, seed
            ),
        )

    def _hs_burst(
        self,
        spec: CameraSpec,
        times_s: np.ndarray,
        frame_shape: tuple[int, int],
        field_shape_hr: tuple[int, int],
        mount: HSMount,
        seed: int,
    ) -> np.ndarray:
        mount.check_fits(frame_shape, field_shape_hr)
        rng = np.random.default_rng([int(seed), _CAMERA_STREAM["hs"]])
        out = np.empty((len(times_s), *frame_shape), dtype=np.uint16)
        for start in range(0, len(times_s), _CHUNK_FRAMES):
            stop = start + _CHUNK_FRAMES
            truth = self.render(times_s[start:stop], field_shape_hr, seed=seed)
            out[start:stop] = digitize(mount.view(truth, frame_shape), spec, rng)
        return out


def _times_key(times_s: np.ndarray) -> bytes:
    return np.ascontiguousarray(times_s, dtype=np.float64).tobytes()


_CACHE: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_CACHE_LOCK = threading.Lock()
#: Bursts kept: the last one of each camera, and a little more.
_CACHE_SIZE = 4


def _cached(key: tuple[Any, ...], render: Callable[[], np.ndarray]) -> np.ndarray:
    """Return the burst for ``key``, rendering it on a miss.

    Rendering is deterministic (seeded scene and noise), so a burst asked for
    again (a repeated run restarts at the same seed) is the same array: caching
    it changes nothing but the time, which is otherwise dominated by the
    synthetic scene (seconds per full-sensor burst), not by acquisition.
    """
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    frames = render()
    frames.flags.writeable = False
    with _CACHE_LOCK:
        _CACHE[key] = frames
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return frames


def digitize(
    frames: np.ndarray, spec: CameraSpec, rng: np.random.Generator
) -> np.ndarray:
    """Add shot and read noise to [0, 1] frames and quantise to the ADC's counts.

    Shot noise uses the Gaussian approximation of Poisson noise (photon counts
    in the hundreds and more), several times faster on full-sensor bursts.
    """
    photons = FULL_SCALE_PHOTONS[spec.role]
    full_scale = float(2**spec.bit_depth - 1)
    signal = np.asarray(frames, dtype=np.float32)
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    noisy = signal + np.sqrt(np.maximum(signal, 0.0) / photons) * noise
    counts = noisy * full_scale
    counts += READ_NOISE_COUNTS[spec.role] * rng.standard_normal(
        signal.shape, dtype=np.float32
    )
    return np.clip(np.rint(counts), 0, full_scale).astype(np.uint16)
