"""XFusionError and its few subclasses."""

__all__ = [
    "CheckpointMismatchError",
    "InvalidInputError",
    "RecordingError",
    "RegistrationError",
    "RunNotFinishedError",
    "RunNotFusableError",
    "XFusionError",
    "tiled_unavailable",
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


def tiled_unavailable(err: BaseException | None) -> bool:
    """Tell whether ``err`` is the server being unavailable, not a run's outcome.

    No connection or a timeout (``httpx.TransportError``), or an HTTP 5xx answer
    (tiled's ``ClientError`` is an ``httpx.HTTPStatusError``): trying again later
    may succeed, so nothing is recorded as the run's outcome.
    """
    import httpx  # errors sits below every layer; httpx comes with tiled

    if isinstance(err, httpx.TransportError):
        return True
    if isinstance(err, httpx.HTTPStatusError):
        return err.response.status_code >= 500
    return False
