"""The PASCAL VOC colour palette, label-map PNGs in VOC's own format, and overlays with a legend."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from npdeeplab.files import atomic_file


def voc_palette(size: int = 256) -> np.ndarray:
    """[size, 3] uint8: class c's colour spreads the bits of c over R, G and B, high bit first.

    0 is black (background), 15 (person) is (192, 128, 128), 255 ("ignore") is (224, 224, 192).
    """
    ids = np.arange(size)
    colours = np.zeros((size, 3), dtype=np.uint8)
    for bit in range(8):
        for channel in range(3):
            colours[:, channel] |= (((ids >> (3 * bit + channel)) & 1) << (7 - bit)).astype(np.uint8)
    return colours


PALETTE = voc_palette()


def colorize(labels: np.ndarray) -> Image.Image:
    """An RGB picture of a label map."""
    return Image.fromarray(PALETTE[labels.astype(np.uint8)], "RGB")


def mask_image(labels: np.ndarray) -> Image.Image:
    """A mode-P image of class ids with the VOC palette: the format of VOC SegmentationClass PNGs."""
    image = Image.fromarray(labels.astype(np.uint8), "P")
    image.putpalette(PALETTE.reshape(-1).tolist())
    return image


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG atomically: a temporary file in the same directory, then a rename."""
    with atomic_file(path) as f:
        image.save(f, format="PNG")
    return Path(path)


def save_mask_png(labels: np.ndarray, path: str | os.PathLike) -> Path:
    return save_png(mask_image(labels), path)


def overlay(
    image: Image.Image, labels: np.ndarray, alpha: float, class_names: Sequence[str], legend: bool = True
) -> Image.Image:
    """The image with each non-background class tinted in its VOC colour, and a legend of the classes."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    colours = PALETTE[labels.astype(np.uint8)].astype(np.float32)
    tinted = labels[..., None] != 0
    blended = np.where(tinted, (1 - alpha) * base + alpha * colours, base)
    result = Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8), "RGB")
    ids, counts = np.unique(labels, return_counts=True)
    if legend and ids.size:
        names = [class_names[c] if c < len(class_names) else f"class {c}" for c in ids]
        shares = counts / labels.size
        draw_legend(result, [(int(c), f"{n}  {100 * s:.1f}%") for c, n, s in zip(ids, names, shares, strict=True)])
    return result


def draw_legend(image: Image.Image, entries: Sequence[tuple[int, str]]) -> None:
    """A semi-opaque panel in the top-left corner: a colour swatch and a name per class."""
    size = max(10, min(image.size) // 28)
    font = _font(size)
    pad, gap = size // 2, size // 3
    widths = [ImageDraw.Draw(image).textlength(name, font=font) for _, name in entries]
    panel_w = int(pad * 2 + size + gap + max(widths))
    panel_h = pad * 2 + len(entries) * size + (len(entries) - 1) * gap
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rounded_rectangle((pad, pad, pad + panel_w, pad + panel_h), radius=pad, fill=(255, 255, 255, 200))
    for row, (class_id, name) in enumerate(entries):
        top = 2 * pad + row * (size + gap)
        left = 2 * pad
        colour = tuple(int(v) for v in PALETTE[class_id])
        draw.rectangle((left, top, left + size, top + size), fill=colour + (255,), outline=(60, 60, 60, 255))
        draw.text((left + size + gap, top + size // 2), name, fill=(20, 20, 20, 255), font=font, anchor="lm")
    image.paste(Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB"))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one small bitmap font
        return ImageFont.load_default()
