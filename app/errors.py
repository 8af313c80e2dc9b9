"""Errors a user can cause; each message says what happened and what to do."""


def printable(value: object, limit: int = 80) -> str:
    """Text from a file or a user, safe to quote in a message: control bytes escaped, cut short."""
    text = value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


class AppError(Exception):
    """An error whose message is shown to the user as is."""


class BadModelFile(AppError):
    """A GGUF file that cannot be used (not GGUF, truncated, missing keys, wrong shapes)."""


class ModelMismatch(AppError):
    """An LM and an mmproj that do not belong together."""


class ModelLoadFailed(AppError):
    """llama.cpp refused to load a model that passed our own checks."""


class ModelNotFound(AppError, FileNotFoundError):
    """A model name or path that Iris cannot find."""


class NoModelLoaded(AppError):
    """A chat was asked for before any model was loaded."""


class UnsupportedImage(AppError):
    """An image file that cannot be read or is too large."""


class UnsupportedVideo(AppError):
    """A video file that cannot be read, or a model that cannot take one."""


class TooManyImages(AppError):
    """More images in one message than the model accepts."""


class ContextTooLong(AppError):
    """The conversation does not fit the model's context window."""


class ReplyInProgress(AppError):
    """A question, regenerate or edit sent while this conversation is still being answered."""


class DownloadError(AppError):
    """A download that could not finish; what was fetched is kept for the next try."""


class DownloadCancelled(DownloadError):
    """The user stopped a download; it resumes where it stopped."""


class NotEnoughSpace(DownloadError):
    """Too little free disk for a download."""


class ChecksumMismatch(DownloadError):
    """A downloaded file whose SHA-256 is not the published one."""
