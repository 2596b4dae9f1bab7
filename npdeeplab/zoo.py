"""Model registry and model resolution: names to verified local .tflite files, downloading on demand.

Known models are described by JSON files in the ``npdeeplab.models`` package. A model is looked up
as an explicit path, then as ``<name>.tflite`` in each directory of ``$NPDEEPLAB_MODELS``, then in
the cache directory, and is finally downloaded from its official address (or from
``$NPDEEPLAB_MODEL_URL_BASE``) with its sha256 checked.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from tqdm import tqdm

from npdeeplab.errors import ChecksumError, DownloadError, ModelError, ModelNotFoundError

DEFAULT_MODEL = "deeplabv3_257_mv_gpu"
MODELS_ENV = "NPDEEPLAB_MODELS"
CACHE_ENV = "NPDEEPLAB_CACHE"
URL_BASE_ENV = "NPDEEPLAB_MODEL_URL_BASE"
_CHUNK = 1 << 16
_USER_AGENT = "npdeeplab (https://pypi.org/project/npdeeplab/)"


OUTPUT_KINDS = ("logits", "labels", "probability", "logit", "two_class")
"""How a segmentation model's output is read: "logits" [1, H, W, C] (argmax), "labels" [1, H, W]
(class ids), "probability" (one foreground channel after LOGISTIC, as MediaPipe's Selfie), "logit"
(one foreground channel before the sigmoid, as BodyPix's float_segments), "two_class" (background and
person logits, softmax over the two, as Google Meet's models)."""
FOREGROUND_KINDS = ("probability", "logit", "two_class")


def range_to_mean_std(low: float, high: float) -> tuple[float, float]:
    """(mean, std) with (pixel - mean) / std mapping pixels 0..255 onto [low, high]."""
    std = 255.0 / (high - low)
    return 0.0 - low * std + 0.0, std


@dataclass(frozen=True)
class ModelEntry:
    """One known model: where to get it, how to check it, and how to feed and read it."""

    name: str
    description: str
    url: str | None  # the official download address; None: not downloadable, put the file in $NPDEEPLAB_MODELS
    sha256: str
    size: int
    input_size: tuple[int, int]  # (height, width)
    input_dtype: str  # "float32" | "uint8"
    mean: float  # model input = (pixel - mean) / std (float models); from "input_range" where the entry gives one
    std: float
    output: str  # one of OUTPUT_KINDS
    labels: tuple[str, ...]
    licence: str
    raw_pixels: bool = False  # an integer input fed the pixels 0..255 as they are, whatever its quantization
    input_range: tuple[float, float] | None = None  # the real range pixels 0..255 map onto, as the entry says
    output_index: int | None = None  # which of several outputs segment reads (position in the output list)
    output_name: str | None = None  # ... or by tensor name

    @property
    def filename(self) -> str:
        """The file name the model is stored under: ``<name>.tflite``."""
        return f"{self.name}.tflite"


def _entry_from_json(data: dict, source: str) -> ModelEntry:
    """Build a ModelEntry from one registry JSON object (a malformed file is a packaging bug)."""
    height, width = data["input_size"]
    input_range = None
    if "input_range" in data:
        low, high = (float(v) for v in data["input_range"])
        if not low < high:
            raise RuntimeError(f"registry file {source}: input_range must be [low, high] with low < high")
        if "mean" in data or "std" in data:
            raise RuntimeError(f"registry file {source}: give input_range or mean and std, not both")
        input_range = (low, high)
        mean, std = range_to_mean_std(low, high)
    else:
        mean, std = float(data["mean"]), float(data["std"])
    url = data.get("url")
    entry = ModelEntry(
        name=str(data["name"]),
        description=str(data["description"]),
        url=str(url) if url else None,
        sha256=str(data["sha256"]).lower(),
        size=int(data["size"]),
        input_size=(int(height), int(width)),
        input_dtype=str(data["input_dtype"]),
        mean=mean,
        std=std,
        output=str(data["output"]),
        labels=tuple(str(label) for label in data["labels"]),
        licence=str(data["licence"]),
        raw_pixels=bool(data.get("raw_pixels", False)),
        input_range=input_range,
        output_index=int(data["output_index"]) if data.get("output_index") is not None else None,
        output_name=str(data["output_name"]) if data.get("output_name") is not None else None,
    )
    if f"{entry.name}.json" != source:
        raise RuntimeError(f"registry file {source} describes model {entry.name!r}; its name must match the file")
    if entry.output not in OUTPUT_KINDS:
        raise RuntimeError(f"registry file {source}: output {entry.output!r} is not one of {', '.join(OUTPUT_KINDS)}")
    if entry.output_index is not None and entry.output_name is not None:
        raise RuntimeError(f"registry file {source}: give output_index or output_name, not both")
    return entry


@functools.cache
def registry() -> dict[str, ModelEntry]:
    """All known models by name, read once from the JSON files in ``npdeeplab.models``."""
    entries = {}
    for item in sorted(resources.files("npdeeplab.models").iterdir(), key=lambda p: p.name):
        if item.name.endswith(".json"):
            entry = _entry_from_json(json.loads(item.read_text(encoding="utf-8")), item.name)
            entries[entry.name] = entry
    return entries


def get_entry(name: str) -> ModelEntry:
    """The registry entry called ``name``; ModelNotFoundError listing the known names otherwise."""
    entries = registry()
    if name not in entries:
        raise ModelNotFoundError(f"unknown model {name!r}; known models: {', '.join(entries)}")
    return entries[name]


def entry_for_path(path: str | os.PathLike[str]) -> ModelEntry | None:
    """The entry whose name is the file name stem of ``path`` (e.g. a local copy of a known model), else None."""
    return registry().get(Path(path).stem)


def cache_dir() -> Path:
    """Where downloaded models go (not created here): $NPDEEPLAB_CACHE, else the platform's user cache."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "npdeeplab"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore relative paths
        return Path(xdg) / "npdeeplab"
    return Path.home() / ".cache" / "npdeeplab"


def model_dirs() -> list[Path]:
    """The directories listed in $NPDEEPLAB_MODELS (os.pathsep-separated), in order, as absolute
    paths: a relative entry means the same folder however the working directory changes later
    (a subprocess started elsewhere, a test in a temporary folder)."""
    value = os.environ.get(MODELS_ENV, "")
    return [Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part]


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _looks_like_path(model: str | os.PathLike[str]) -> bool:
    """True for PathLike objects and strings with a directory separator or a .tflite suffix."""
    if not isinstance(model, str):
        return True
    separators = {os.sep, os.altsep} - {None}
    return any(sep in model for sep in separators) or model.lower().endswith(".tflite")


def _explicit_path(model: str | os.PathLike[str]) -> Path:
    """The user-given model file, which must exist; ModelNotFoundError naming it otherwise."""
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise ModelNotFoundError(f"model path {path} is a directory, not a .tflite file")
    hint = ""
    if path.stem in registry() and path.parent == Path("."):
        hint = f" (to use the known model, pass its name {path.stem!r} without .tflite)"
    raise ModelNotFoundError(f"model file not found: {path}{hint}")


def _verified(path: Path, entry: ModelEntry, *, cached: bool) -> Path:
    """``path`` if its sha256 matches the entry; ChecksumError naming the file otherwise."""
    try:
        got = sha256_of(path)
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    if got == entry.sha256:
        return path
    if cached:
        fix = "delete it to download it again"
    elif entry.url:
        fix = f"replace it with the official file from {entry.url}"
    else:
        fix = f"replace it with the right file ({entry.name} is {_NOT_DOWNLOADABLE})"
    raise ChecksumError(
        f"model file {path} has sha256 {got} ({path.stat().st_size} bytes) but {entry.name} "
        f"expects {entry.sha256} ({entry.size} bytes); {fix}"
    )


def _search_dirs() -> list[Path]:
    """Where a registry model is looked for: $NPDEEPLAB_MODELS directories, then the cache."""
    return [*model_dirs(), cache_dir()]


def _find_registered(entry: ModelEntry) -> Path | None:
    """The first verified ``<name>.tflite`` in the search directories, or None if there is none."""
    cache = cache_dir()
    for directory in _search_dirs():
        candidate = directory / entry.filename
        if candidate.is_file():
            return _verified(candidate, entry, cached=directory == cache)
    return None


def resolve_model(model: str | os.PathLike[str], *, download: bool = True, progress: bool = True) -> Path:
    """A local, checked .tflite file for a path or a registry name, downloading it if allowed."""
    if _looks_like_path(model):
        return _explicit_path(model)
    name = str(model)
    if name not in registry() and Path(name).is_file():  # a model file in the working directory, no suffix
        return Path(name)
    entry = get_entry(name)  # unknown names raise, listing the known ones
    found = _find_registered(entry)
    if found is not None:
        return found
    if not download or _download_url(entry, None) is None:
        places = ", ".join(str(d) for d in _search_dirs())
        off = "" if download else " and downloading is off"
        raise ModelNotFoundError(
            f"model {name} not found (looked for {entry.filename} in {places}){off}; "
            f"{_manual_hint(entry)}"
        )
    return download_model(entry, progress=progress)


def _download_url(entry: ModelEntry, url: str | None) -> str | None:
    """The explicit URL, else $NPDEEPLAB_MODEL_URL_BASE/<name>.tflite, else the official URL (None if it has none)."""
    if url:
        return url
    base = os.environ.get(URL_BASE_ENV)
    if base:
        return f"{base.rstrip('/')}/{entry.filename}"
    return entry.url


_NOT_DOWNLOADABLE = f"not downloadable; put the file in {MODELS_ENV}"


def _manual_hint(entry: ModelEntry) -> str:
    """How to get a model without npdeeplab downloading it."""
    if not entry.url:
        return f"{entry.name} is {_NOT_DOWNLOADABLE} (a directory listed there), or pass the path to the .tflite file"
    return (
        f"download {entry.url} manually and put it in a directory listed in {MODELS_ENV}, "
        f"or pass the path to the .tflite file"
    )


def _reason(exc: BaseException) -> str:
    """A short human description of a network or file error."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed in the middle of the response"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _stream(url: str, out: IO[bytes], total: int, desc: str, *, progress: bool, timeout: float) -> str:
    """Copy ``url`` into ``out`` with a progress bar; the sha256 of what was written."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    received = 0
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        bar_options = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, "leave": False}
        with tqdm(total=expected or total, desc=desc, disable=None if progress else True, **bar_options) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received != expected:  # read(amt) returns b"" on a short body, no IncompleteRead
        raise ConnectionError(f"connection closed after {received} of {expected} bytes")
    return digest.hexdigest()


def download_model(
    entry: ModelEntry,
    dest_dir: Path | None = None,
    *,
    progress: bool = True,
    url: str | None = None,
    timeout: float = 30,
) -> Path:
    """Download ``entry`` to ``<dest_dir or cache_dir()>/<name>.tflite``, checking its sha256.

    The data goes to a temporary file that is renamed into place only once its checksum matches,
    so nothing is left behind on failure. Raises DownloadError or ChecksumError.
    """
    source = _download_url(entry, url)
    if source is None:
        raise ModelNotFoundError(f"model {entry.name} has no download address: {_manual_hint(entry)}")
    dest = Path(dest_dir) if dest_dir is not None else cache_dir()
    target = dest / entry.filename
    tmp_path: Path | None = None
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(delete=False, dir=dest, prefix=f".{entry.name}.", suffix=".part") as tmp:
            tmp_path = Path(tmp.name)
            got = _stream(source, tmp, entry.size, entry.name, progress=progress, timeout=timeout)
        if got != entry.sha256:
            raise ChecksumError(
                f"download of {entry.name} from {source} has sha256 {got} but expected {entry.sha256}; "
                f"nothing was saved; {_manual_hint(entry)}"
            )
        os.chmod(tmp_path, 0o644)  # NamedTemporaryFile creates 0600
        os.replace(tmp_path, target)
        tmp_path = None
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError, HTTPError and timeouts are OSErrors
        raise DownloadError(
            f"could not download model {entry.name} from {source} ({_reason(exc)}); {_manual_hint(entry)}"
        ) from exc
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
    return target
