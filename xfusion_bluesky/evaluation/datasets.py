"""Sequences to evaluate on: held-out synthetic scenes, real radiographs, user files.

Every sequence is a ground-truth HR video in [0, 1] (the evaluation bins it for
LR and picks its HR frames), or, for a user's recording, the LR and HR frames as
acquired with an optional truth. Synthetic scene seeds start at 2**31: training
draws its seeds below 2**31 (``training.dataset``), so these are never trained on.
The real radiographs (Diamond I13-2) are validation data, never trained on and not
shipped: their folder comes from ``--radiographs`` or ``XFUSION_VALIDATION``
(:func:`default_radiographs`); without it that group is skipped with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.normalization import normalize_percentile, percentile_range
from xfusion_bluesky.synthetic.scene import SCENE_VERSION, generate_scene

__all__ = [
    "CASES",
    "HELD_OUT_SEED",
    "RADIOGRAPH_FILE",
    "Sequence",
    "default_radiographs",
    "flat_field",
    "load_frames",
    "radiograph_sequences",
    "shown_path",
    "synthetic_sequences",
    "user_sequence",
]

logger = logging.getLogger(__name__)

#: First held-out scene seed; training draws scene seeds below it.
HELD_OUT_SEED = 2**31
#: The paper's two cases, by the scene family that plays each here.
CASES = {
    "additive_manufacturing": "case 1, fast",
    "fast_front": "fast",
    "friction_stir": "case 2, slow",
    "radiographs": "real",
}
#: The real radiographs (Diamond I13-2) inside a data folder.
RADIOGRAPH_FILE = Path("savu_i13_projections") / "savu_i13_projections.npz"
#: The repository root: provenance shows paths inside it relative to it.
_REPO = Path(__file__).resolve().parents[2]


def default_radiographs() -> Path | None:
    """Return the folder holding :data:`RADIOGRAPH_FILE` (``XFUSION_VALIDATION``).

    None when unset: the radiographs are not shipped with the package.
    """
    from xfusion_bluesky.settings import Settings

    return Settings.from_env().validation_dir


SCALE = 4


@dataclass(frozen=True)
class Sequence:
    """One sequence to fuse and score.

    Attributes
    ----------
    name : str
        Unique, file-name safe: ``"<family>-<seed>"``, ``"radiographs-<first>"``,
        ``"user"``.
    group : str
        What the figures pool over: the scene family, ``"radiographs"`` or
        ``"user"``.
    truth : ndarray, (T, H, W) float32 in [0, 1], or None
        Ground truth at every LR instant; None for a user recording without one.
    seed : int
        Scene seed (also seeds the LR noise); 0 for real data.
    source : dict
        Where it came from (JSON-serialisable).
    lr, hr, hr_index : ndarray or None
        A user's acquired frames (any intensity scale) and the LR frame of each
        HR frame; None for sequences the evaluation degrades itself.
    """

    name: str
    group: str
    truth: NDArray[np.float32] | None
    seed: int
    source: dict[str, Any] = field(default_factory=dict)
    lr: NDArray[Any] | None = None
    hr: NDArray[Any] | None = None
    hr_index: NDArray[np.int64] | None = None

    @property
    def num_frames(self) -> int:
        """Number of LR instants T."""
        frames = self.truth if self.truth is not None else self.lr
        return 0 if frames is None else int(frames.shape[0])


def synthetic_sequences(
    families: tuple[str, ...],
    *,
    seeds: tuple[int, ...],
    num_frames: int,
    hr_shape: tuple[int, int],
) -> list[Sequence]:
    """Render one held-out sequence per (scene family, seed).

    Parameters
    ----------
    families : tuple of str
        Scene families (``synthetic.scene.SCENE_FAMILIES``).
    seeds : tuple of int
        Scene seeds, each ≥ :data:`HELD_OUT_SEED`.
    num_frames : int
        LR instants T per sequence.
    hr_shape : (int, int)
        HR frame size, multiples of 4.
    """
    low = [s for s in seeds if s < HELD_OUT_SEED]
    if low:
        raise InvalidInputError(
            f"evaluation seeds must be ≥ 2**31 (never drawn in training); got {low}"
        )
    height, width = hr_shape
    return [
        Sequence(
            name=f"{family}-{seed}",
            group=family,
            truth=generate_scene(
                family, num_frames=num_frames, height=height, width=width, seed=seed
            ),
            seed=seed,
            source={"family": family, "seed": seed, "scene_version": SCENE_VERSION},
        )
        for family in families
        for seed in seeds
    ]


def flat_field(proj: NDArray[Any], dark: NDArray[Any], flat: NDArray[Any]) -> Any:
    """Return ``(proj − dark)/(flat − dark)``; dead pixels from their 3×3 median.

    Parameters
    ----------
    proj : ndarray, (t, h, w)
        Raw radiographs.
    dark, flat : ndarray, (h, w)
        Dark frame and flat (open-beam) frame; where ``flat ≤ dark`` the pixel is
        dead and takes the median of its 3×3 neighbours in each frame.

    Returns
    -------
    ndarray, (t, h, w) float64
    """
    gain = flat.astype(np.float64) - dark
    dead = gain <= 0
    corrected = (proj - dark) / np.where(dead, np.nan, gain)
    for y, x in np.argwhere(dead):  # a handful of dead detector pixels
        patch = corrected[:, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
        corrected[:, y, x] = np.nanmedian(patch.reshape(len(patch), -1), axis=1)
    return corrected


def radiograph_sequences(
    folder: Path,
    *,
    num_frames: int,
    max_sequences: int = 2,
    hr_shape: tuple[int, int] | None = None,
) -> list[Sequence]:
    """Cut the real I13-2 radiographs into sequences of ``num_frames`` frames.

    Flat-field corrected, cropped to a multiple of 4 (or centre-cropped to
    ``hr_shape``), then each sequence clipped at its 0.35 / 99.65 percentiles
    and min-max scaled to [0, 1] (the paper's pre-processing). Consecutive
    sequences share one frame (frames 0 … T − 1, T − 1 … 2T − 2, …).
    Validation data: never trained on.

    Returns
    -------
    list of Sequence
        Empty when the file is missing (logged as a warning that says so).
    """
    path = Path(folder) / RADIOGRAPH_FILE
    if not path.is_file():
        logger.warning(
            "real radiographs skipped: no %s under %s (point --radiographs at a "
            "folder holding it, or pass 'none')",
            RADIOGRAPH_FILE,
            folder,
        )
        return []
    with np.load(path) as data:
        corrected = flat_field(data["proj"], data["dark"], data["flat"])
    height, width = (n - n % SCALE for n in corrected.shape[1:])
    if hr_shape is not None:
        height, width = min(hr_shape[0], height), min(hr_shape[1], width)
    top = (corrected.shape[1] - height) // 2
    left = (corrected.shape[2] - width) // 2
    corrected = corrected[:, top : top + height, left : left + width]
    sequences: list[Sequence] = []
    for first in range(0, corrected.shape[0] - num_frames + 1, num_frames - 1):
        if len(sequences) == max_sequences:
            break
        window = corrected[first : first + num_frames]
        lo, hi = percentile_range(window)
        sequences.append(
            Sequence(
                name=f"radiographs-{first}",
                group="radiographs",
                truth=normalize_percentile(window, lo, hi),
                seed=0,
                source={
                    "file": shown_path(path),
                    "frames": [first, first + num_frames - 1],
                    "crop": [top, left, height, width],
                    "range": [lo, hi],
                },
            )
        )
    return sequences


def shown_path(path: str | Path) -> str:
    """Return ``path`` as provenance records show it, the same on every host.

    Inside the repository: relative to its root. Inside the validation folder
    (``XFUSION_VALIDATION``): ``$XFUSION_VALIDATION/…``. Any other path as given.
    """
    resolved = Path(path).resolve()
    validation = default_radiographs()
    roots = [(_REPO, "")]
    if validation is not None:
        roots.append((validation.resolve(), "$XFUSION_VALIDATION"))
    for root, label in roots:
        try:
            inside = resolved.relative_to(root).as_posix()
        except ValueError:
            continue
        return "/".join(part for part in (label, inside) if part and part != ".")
    return str(path)


def load_frames(path: str | Path) -> NDArray[Any]:
    """Read a (t, h, w) frame stack from .npy, .npz, .h5/.hdf5 or .tif/.tiff.

    An HDF5 file gives ``/entry/data/data`` (the areaDetector layout) when it
    exists, else its only 3-D dataset; ``FILE.h5:/path/to/dataset`` picks one.
    An .npz gives its only array. TIFF needs the ``tifffile`` package.
    """
    text = str(path)
    dataset = None
    if ".h5:" in text or ".hdf5:" in text:
        text, dataset = text.rsplit(":", 1)
    file = Path(text)
    if not file.is_file():
        raise FileNotFoundError(f"no frame file at {file}")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        frames = np.load(file)
    elif suffix == ".npz":
        with np.load(file) as data:
            if len(data.files) != 1:
                raise InvalidInputError(
                    f"{file} holds {data.files}: save one array per .npz"
                )
            frames = data[data.files[0]]
    elif suffix in (".h5", ".hdf5"):
        frames = _read_hdf5(file, dataset)
    elif suffix in (".tif", ".tiff"):
        try:
            import tifffile
        except ImportError as err:
            raise InvalidInputError(
                f"reading {file} needs tifffile (pip install tifffile), or save the "
                "frames as .npy or .h5"
            ) from err
        frames = tifffile.imread(file)
    else:
        raise InvalidInputError(
            f"unknown frame file type {suffix!r} ({file}): use .npy, .npz, .h5 or .tif"
        )
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise InvalidInputError(
            f"{file} must hold (t, h, w) frames; got {frames.shape}"
        )
    return frames


def _read_hdf5(file: Path, dataset: str | None) -> NDArray[Any]:
    """Read one dataset of an HDF5 file (see :func:`load_frames`)."""
    import h5py

    with h5py.File(file, "r") as h5:
        if dataset is None:
            if "entry/data/data" in h5:
                dataset = "entry/data/data"
            else:
                found: list[str] = []
                h5.visititems(
                    lambda name, obj: (
                        found.append(name)
                        if isinstance(obj, h5py.Dataset) and obj.ndim == 3
                        else None
                    )
                )
                if len(found) != 1:
                    raise InvalidInputError(
                        f"{file} holds 3-D datasets {found}: name one as "
                        f"{file}:/path/to/dataset"
                    )
                dataset = found[0]
        return np.asarray(h5[dataset][()])


def user_sequence(
    lr: str | Path,
    hr: str | Path,
    hr_index: list[int] | str | Path,
    *,
    truth: str | Path | None = None,
) -> Sequence:
    """Load a user's LR and HR recording (and optional truth) as a Sequence.

    Parameters
    ----------
    lr, hr : path
        Frame files (:func:`load_frames`); HR exactly 4× LR, registered.
    hr_index : list of int or path
        LR frame index of each HR frame, or a .npy/.txt file holding them.
    truth : path, optional
        Truth at every LR instant, HR size, in the HR frames' intensity scale;
        it is scaled to [0, 1] with the HR frames' 0.35 / 99.65 percentiles.
    """
    lr_frames, hr_frames = load_frames(lr), load_frames(hr)
    if isinstance(hr_index, str | Path):
        index_file = Path(hr_index)
        values = (
            np.load(index_file)
            if index_file.suffix == ".npy"
            else np.loadtxt(index_file, ndmin=1)
        )
        hr_index = [int(v) for v in np.asarray(values).ravel()]
    index = np.asarray(hr_index, dtype=np.int64)
    truth01 = None
    source: dict[str, Any] = {"lr": str(lr), "hr": str(hr), "hr_index": index.tolist()}
    if truth is not None:
        lo, hi = percentile_range(hr_frames)
        truth01 = normalize_percentile(load_frames(truth), lo, hi)
        expected = (lr_frames.shape[0], *hr_frames.shape[1:])
        if truth01.shape != expected:
            raise InvalidInputError(
                f"truth must hold one HR-size frame per LR frame, {expected}; got "
                f"{truth01.shape}"
            )
        source |= {"truth": str(truth), "range": [lo, hi]}
    return Sequence(
        name="user",
        group="user",
        truth=truth01,
        seed=0,
        source=source,
        lr=lr_frames,
        hr=hr_frames,
        hr_index=index,
    )
