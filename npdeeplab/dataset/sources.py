"""Where a task's image comes from: a path (the workers share this filesystem) or the file's bytes
(they do not). A model can travel as bytes too: each worker writes it once to a temporary folder,
under its own file name, so that its registry entry (input size, normalisation) still applies."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from npdeeplab.files import atomic_file


@dataclass(frozen=True)
class FileBytes:
    """A file's name (for messages) and its content."""

    name: str
    data: bytes


Source = str | FileBytes

_written: dict[str, Path] = {}
_writing = threading.Lock()


def read_source(path: str | os.PathLike, as_bytes: bool) -> Source:
    return FileBytes(str(path), Path(path).read_bytes()) if as_bytes else str(path)


def open_source(source: Source) -> str | io.BytesIO:
    """Something load_image and Image.open take: the path, or the bytes as a named file object."""
    if isinstance(source, str):
        return source
    stream = io.BytesIO(source.data)
    stream.name = source.name  # load_image names the file in its errors
    return stream


def model_file(model: str | FileBytes) -> str:
    """The model's name or path here; a model sent as bytes is written once per process."""
    if isinstance(model, str):
        return model
    digest = hashlib.sha256(model.data).hexdigest()[:16]
    with _writing:
        if digest not in _written:
            folder = Path(tempfile.gettempdir()) / "npdeeplab-models" / digest
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / Path(model.name).name
            if not path.is_file():
                with atomic_file(path) as f:
                    f.write(model.data)
            _written[digest] = path
    return str(_written[digest])
