"""One exception family. Everything npdeeplab raises on purpose derives from NpDeepLabError.

The CLI turns these into one line on stderr and exit code 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class NpDeepLabError(Exception):
    """Base class of every error npdeeplab raises for bad input."""


class ModelError(NpDeepLabError, ValueError):
    """The model file is malformed, uses an unsupported op, or has inconsistent shapes."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model name or path that resolves to nothing."""


class DownloadError(NpDeepLabError):
    """A model download failed (offline, HTTP error, or checksum mismatch)."""


class ChecksumError(DownloadError):
    """A file's sha256 differs from the registry's."""


class InputError(NpDeepLabError, ValueError):
    """A tensor given to the interpreter has the wrong shape or dtype, or a bad index."""


class ImageError(NpDeepLabError):
    """An image that cannot be read, or a directory with no images."""


class NotAllocatedError(NpDeepLabError, RuntimeError):
    """invoke() before allocate_tensors() (or after a resize without a new allocate_tensors()), as LiteRT refuses it."""


class BackendError(NpDeepLabError, ValueError):
    """An unknown backend name, or a backend whose dependency (Numba) does not import here."""
