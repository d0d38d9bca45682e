"""XFusionError and its few subclasses."""

__all__ = [
    "CheckpointMismatchError",
    "InvalidInputError",
    "RecordingError",
    "RegistrationError",
    "RunNotFinishedError",
    "RunNotFusableError",
    "XFusionError",
]


class XFusionError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(XFusionError, ValueError):
    """An argument has the right type but a value the code cannot use.

    The message names the argument, the value, what was expected and how to fix it.
    """


class RunNotFusableError(XFusionError):
    """A raw run cannot be fused: no HR frames, aborted run, missing file, NaN/inf."""


class RunNotFinishedError(XFusionError):
    """A raw run has no stop document yet: it is still being recorded.

    Nothing is written for it; fuse it once the scan has ended (the worker waits
    for the stop document, ``xfusion-bluesky fuse --wait S`` too).
    """


class RegistrationError(InvalidInputError):
    """Two images cannot be registered: too little texture, no overlap, no motion.

    The message says which, with the number measured and the limit, and what to
    image instead.
    """


class RecordingError(InvalidInputError):
    """A camera file or a recording is missing, late, truncated or inconsistent.

    The message names the file and what is wrong with it; nothing is written.
    """


class CheckpointMismatchError(XFusionError, ValueError):
    """A state dict does not fit the model: lists missing/unexpected keys and shapes."""
