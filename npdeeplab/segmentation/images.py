"""Reading images (anything Pillow reads) and turning them into model inputs."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from npdeeplab.errors import ImageError
from npdeeplab.kernels.fixed_point import round_half_away, saturate

IMAGE_SUFFIXES = frozenset(
    suffix for suffix, name in Image.registered_extensions().items() if name in Image.OPEN
)
ImageSource = str | os.PathLike | BinaryIO | Image.Image | np.ndarray
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS: about 0.25 GB of RGB pixels


def load_image(source: ImageSource, max_pixels: int | None = None) -> Image.Image:
    """An RGB image with EXIF orientation applied; ImageError (one line) if it cannot be read.

    Images over max_pixels (default DEFAULT_MAX_PIXELS, Pillow's own decompression-bomb limit)
    are refused from their header, before any pixel is decoded.
    """
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, Image.Image):
        _check_pixels(source.size, limit, "the image")
        return to_rgb(ImageOps.exif_transpose(source))
    if isinstance(source, np.ndarray):
        return _from_array(source)
    name = str(getattr(source, "name", None) or source) if hasattr(source, "read") else str(source)
    if not hasattr(source, "read"):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"image {name!r} does not exist")
        if path.is_dir():
            raise ImageError(f"{name!r} is a directory, not an image")
        if path.stat().st_size == 0:
            raise ImageError(f"image {name!r} is an empty file")
    try:
        with _pillow_bomb_check_off(), Image.open(source) as image:
            _check_pixels(image.size, limit, repr(name))
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except UnidentifiedImageError:
        raise ImageError(f"{name!r} is not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageError(f"cannot read image {name!r}: {error}") from None


def _check_pixels(size: tuple[int, int], limit: int, name: str) -> None:
    width, height = size
    if limit and width * height > limit:
        raise ImageError(
            f"{name} has {width * height:,} pixels ({width}x{height}), over the limit of {limit:,} "
            "(a guard against decompression bombs; --max-pixels raises it)"
        )


_bomb_check_lock = threading.Lock()
_bomb_check_users = 0
_pillow_limit: int | None = None


@contextmanager
def _pillow_bomb_check_off() -> Iterator[None]:
    """Pillow's own check warns above its limit and raises above twice that, in its own words;
    npdeeplab checks the size itself (_check_pixels), against a limit the user can raise.

    Pillow's limit is a global: it is switched off while any thread is opening an image here,
    and restored when the last one is done.
    """
    global _bomb_check_users, _pillow_limit
    with _bomb_check_lock:
        if _bomb_check_users == 0:
            _pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        _bomb_check_users += 1
    try:
        yield
    finally:
        with _bomb_check_lock:
            _bomb_check_users -= 1
            if _bomb_check_users == 0:
                Image.MAX_IMAGE_PIXELS = _pillow_limit


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode; 16- and 32-bit grey is scaled to 8 bits, not clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low or 1.0) * 255.0
        image = Image.fromarray(scaled.astype(np.uint8), "L")
    return image.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise ImageError(f"an image array must be HxWx3 (or HxWx4) uint8, got shape {array.shape} {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array[..., :3]), "RGB")


@dataclass(frozen=True)
class FoundImage:
    path: Path  # absolute
    name: Path  # relative to the folder it was found in (sub/x.png), or the file's own name


@dataclass(frozen=True)
class FoundImages:
    images: list[FoundImage]
    skipped_folders: list[Path] = field(default_factory=list)  # subfolders not searched (no --recursive)


def find_images(paths: Sequence[str | os.PathLike], recursive: bool = False) -> FoundImages:
    """The files named, with directories expanded to the images they hold (sorted; subfolders
    only when recursive, else listed as skipped). Paths are made absolute, so messages name
    files unambiguously."""
    found: list[FoundImage] = []
    skipped: list[Path] = []
    for item in paths:
        path = Path(item).absolute()
        if path.is_dir():
            files = path.rglob("*") if recursive else path.iterdir()
            images = sorted(p for p in files if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                where = "or its subfolders " if recursive else ""
                raise ImageError(f"directory {str(path)!r} {where}holds no images")
            found.extend(FoundImage(p, p.relative_to(path)) for p in images)
            if not recursive:
                skipped.extend(sorted(p for p in path.iterdir() if p.is_dir()))
        elif path.exists():
            found.append(FoundImage(path, Path(path.name)))
        else:
            raise ImageError(f"image {str(path)!r} does not exist")
    if not found:
        raise ImageError("no images given")
    return FoundImages(found, skipped)


def to_model_input(
    image: Image.Image,
    size: tuple[int, int],
    dtype: str | np.dtype = "float32",
    mean: float = 127.5,
    std: float = 127.5,
    quantization: tuple[float, int] | None = None,
) -> np.ndarray:
    """[1, h, w, 3]: the image stretched to the model's size with Pillow's bilinear filter (no
    letterboxing, as the TFLite example app does), then (pixel - mean) / std for float inputs; for
    quantized integer inputs that real value is quantized with the input's (scale, zero point);
    integer inputs without quantization take the pixels as they are."""
    height, width = size
    resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None)
    pixels = np.asarray(resized)
    dtype = np.dtype(dtype)
    if dtype.kind != "f" and quantization is None:
        return pixels.astype(dtype)[None]
    values = (pixels.astype(np.float32) - np.float32(mean)) / np.float32(std)
    if dtype.kind == "f":
        return values.astype(dtype)[None]
    scale, zero_point = quantization
    quantized = round_half_away(values / np.float32(scale)) + zero_point
    return saturate(quantized, dtype)[None]
