"""Reading images (anything Pillow reads) and turning them into model inputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from npdeeplab.errors import ImageError

IMAGE_SUFFIXES = frozenset(
    suffix for suffix, name in Image.registered_extensions().items() if name in Image.OPEN
)
ImageSource = str | os.PathLike | BinaryIO | Image.Image | np.ndarray


def load_image(source: ImageSource) -> Image.Image:
    """An RGB image with EXIF orientation applied; ImageError (one line) if it cannot be read."""
    if isinstance(source, Image.Image):
        return to_rgb(ImageOps.exif_transpose(source))
    if isinstance(source, np.ndarray):
        return _from_array(source)
    name = getattr(source, "name", None) or str(source)
    if not hasattr(source, "read"):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"image {name!r} does not exist")
        if path.is_dir():
            raise ImageError(f"{name!r} is a directory, not an image")
        if path.stat().st_size == 0:
            raise ImageError(f"image {name!r} is an empty file")
    try:
        with Image.open(source) as image:
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except UnidentifiedImageError:
        raise ImageError(f"{name!r} is not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(f"cannot read image {name!r}: {error}") from None


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


def find_images(paths: list[str | os.PathLike]) -> list[Path]:
    """The files named, with directories expanded to the images they hold (sorted, not recursive)."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise ImageError(f"directory {str(path)!r} holds no images")
            found.extend(images)
        elif path.exists():
            found.append(path)
        else:
            raise ImageError(f"image {str(path)!r} does not exist")
    if not found:
        raise ImageError("no images given")
    return found


def to_model_input(
    image: Image.Image,
    size: tuple[int, int],
    dtype: str | np.dtype = "float32",
    mean: float = 127.5,
    std: float = 127.5,
) -> np.ndarray:
    """[1, h, w, 3]: the image stretched to the model's size with Pillow's bilinear filter (no
    letterboxing, as the TFLite example app does), then (pixel - mean) / std for float inputs."""
    height, width = size
    resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None)
    pixels = np.asarray(resized)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        values = (pixels.astype(np.float32) - np.float32(mean)) / np.float32(std)
        return values.astype(dtype)[None]
    return pixels.astype(dtype)[None]
