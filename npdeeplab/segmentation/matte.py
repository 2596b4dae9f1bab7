"""Person mattes: feathering, compositing the person onto a new background, and matte PNGs.

A matte is an H x W float32 array of person probabilities at the photo's size. The composite is
``matte * photo + (1 - matte) * background``, with the matte feathered slightly first. A blurred
background is a normalized convolution, ``blur(photo * (1 - m)) / blur(1 - m)``: the person is
weighted out of the blur, so their colours do not bleed into the background around them (no halo).

Blurs are Gaussian, computed in float (Pillow's GaussianBlur takes only 8-bit modes): with a
sampled kernel in NumPy for radii up to 4 px; larger ones on a copy shrunk k times (Pillow's BOX
filter on float planes) with a radius of at most 4 there, then scaled back up bilinearly, so a
blur of any radius costs about the same. Pixels outside the image count as zero, and every blur
here is divided by the blur of its weights, put through the same steps, so each blurred pixel is
an average of photo pixels, and the borders are averages of the pixels inside.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor, ImageOps

from npdeeplab.errors import InputError
from npdeeplab.segmentation.images import load_image
from npdeeplab.segmentation.palette import save_png

Background = str | os.PathLike | tuple[int, int, int] | Image.Image | np.ndarray
BLUR_RADIUS_PER_512 = 12.0  # default blur: 12 px for a photo 512 px across (its longer side), in proportion
FEATHER_PER_512 = 1.0  # default matte feather, likewise
EXACT_KERNEL_MAX_SIGMA = 4.0  # above this, blur a shrunk copy
_EDGE = 1 / 255  # matte values this close to 0 or 1 are taken as 0 or 1 (a linear stretch, no step)


def default_blur_radius(size: tuple[int, int]) -> float:
    """The background blur's standard deviation in pixels for a (width, height) photo."""
    return max(1.0, BLUR_RADIUS_PER_512 * max(size) / 512)


def default_feather(size: tuple[int, int]) -> float:
    return max(0.5, FEATHER_PER_512 * max(size) / 512)


def gaussian_blur(plane: np.ndarray, sigma: float) -> np.ndarray:
    """An H x W float32 plane blurred by a Gaussian of standard deviation sigma (pixels), with
    zeros outside the image (approximately, for sigma over EXACT_KERNEL_MAX_SIGMA)."""
    plane = np.ascontiguousarray(plane, dtype=np.float32)
    if sigma <= 0:
        return plane.copy()
    height, width = plane.shape
    factor = max(1, int(sigma / (EXACT_KERNEL_MAX_SIGMA / 2)))
    if factor == 1:
        return _exact_blur(plane, sigma)
    small = (max(1, math.ceil(width / factor)), max(1, math.ceil(height / factor)))
    # The shrinking box and the bilinear tent add about factor**2 / 4 of variance between them.
    small_sigma = math.sqrt(max(sigma * sigma - factor * factor / 4, sigma * sigma / 4)) / factor
    blurred = _exact_blur(_resized(plane, small, Image.Resampling.BOX), small_sigma)
    return _resized(blurred, (width, height), Image.Resampling.BILINEAR)


def _resized(plane: np.ndarray, size: tuple[int, int], method: Image.Resampling) -> np.ndarray:
    return np.asarray(Image.fromarray(plane, "F").resize(size, method), dtype=np.float32)


def _exact_blur(plane: np.ndarray, sigma: float) -> np.ndarray:
    """Separable convolution with the sampled, normalised kernel out to 3 sigma; zeros outside."""
    radius = max(1, math.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    height, width = plane.shape
    padded = np.pad(plane, ((radius, radius), (0, 0)))
    rows = np.zeros_like(plane)
    for i, tap in enumerate(taps):
        rows += tap * padded[i:i + height]
    padded = np.pad(rows, ((0, 0), (radius, radius)))
    out = np.zeros_like(plane)
    for i, tap in enumerate(taps):
        out += tap * padded[:, i:i + width]
    return out


def normalized_blur(values: np.ndarray, weight: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """blur(values * weight) / blur(weight) ([H, W, C] and [H, W]), and blur(weight): each pixel a
    Gaussian-weighted average of the pixels around it, each counted as much as its weight."""
    total = gaussian_blur(weight, sigma)
    average = np.empty(values.shape, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for c in range(values.shape[2]):
            average[..., c] = gaussian_blur(values[..., c] * weight, sigma) / total
    return average, total


def feathered(matte: np.ndarray, sigma: float) -> np.ndarray:
    """The matte softened by a Gaussian (renormalised at the borders), with values within 1/255 of 0
    or 1 stretched onto them, so the person's own pixels stay exactly the photo's."""
    matte = np.clip(np.asarray(matte, dtype=np.float32), 0, 1)
    if sigma > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            matte = gaussian_blur(matte, sigma) / gaussian_blur(np.ones(matte.shape, np.float32), sigma)
    return np.clip((matte - _EDGE) / (1 - 2 * _EDGE), 0, 1).astype(np.float32)


def parse_background(text: str) -> str | tuple[int, int, int] | Path:
    """A --background value: "blur", a colour Pillow knows ("white", "#00b140"), or an image file."""
    if text == "blur":
        return text
    if Path(text).is_file():
        return Path(text)
    try:
        return ImageColor.getrgb(text)[:3]
    except ValueError:
        pass
    raise InputError(
        f"--background {text!r} is not 'blur', a colour Pillow knows (a name or #rrggbb), or an image file"
    )


def background_layer(
    background: Background, photo: np.ndarray, matte: np.ndarray, blur_radius: float | None
) -> np.ndarray:
    """[H, W, 3] float32: what shows where the person is not."""
    height, width = matte.shape
    if isinstance(background, str) and not Path(background).is_file():
        background = parse_background(background)
    if isinstance(background, str) and background == "blur":
        sigma = default_blur_radius((width, height)) if blur_radius is None else float(blur_radius)
        if sigma < 0:
            raise InputError(f"the blur radius must be 0 or more, got {blur_radius}")
        blurred, total = normalized_blur(photo, 1 - matte, sigma)
        # Where no background lies within reach of the blur the person covers everything: any value does.
        return np.where(total[..., None] > 1e-4, blurred, photo).astype(np.float32)
    if isinstance(background, tuple):
        if len(background) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in background):
            raise InputError(f"a background colour is three values 0..255, got {background}")
        return np.broadcast_to(np.array(background, np.float32), (height, width, 3))
    picture = load_image(background)
    covered = ImageOps.fit(picture, (width, height), method=Image.Resampling.BICUBIC)  # cover, centred
    return np.asarray(covered, dtype=np.float32)


def composite(
    image: Image.Image,
    matte: np.ndarray,
    background: Background = "blur",
    blur_radius: float | None = None,
    feather: float | None = None,
) -> Image.Image:
    """The person (matte ~ 1) over a new background: "blur" (the photo's own background, blurred
    with the person weighted out; blur_radius is the Gaussian's standard deviation in pixels,
    default 12 per 512 px of the photo's longer side), a colour (name, #rrggbb or (r, g, b)), or an
    image (path, PIL image or array; scaled to cover the photo and centred). feather: the matte's
    softening in pixels (default 1 per 512 px; 0 for none)."""
    photo = np.asarray(image.convert("RGB"), dtype=np.float32)
    if matte.shape != photo.shape[:2]:
        raise InputError(f"the matte is {matte.shape[1]}x{matte.shape[0]}, the photo {image.width}x{image.height}")
    sigma = default_feather(image.size) if feather is None else float(feather)
    if sigma < 0:
        raise InputError(f"the feather must be 0 or more, got {feather}")
    soft = feathered(matte, sigma)
    behind = background_layer(background, photo, np.clip(matte, 0, 1).astype(np.float32), blur_radius)
    alpha = soft[..., None]
    mixed = alpha * photo + (1 - alpha) * behind
    return Image.fromarray(np.clip(np.round(mixed), 0, 255).astype(np.uint8), "RGB")


def matte_image(matte: np.ndarray, threshold: float | None = None) -> Image.Image:
    """An 8-bit greyscale picture of the matte (0 background, 255 person), or with a threshold a
    binary one: 255 where the matte is over it, else 0."""
    if threshold is not None:
        return Image.fromarray(np.where(matte > threshold, 255, 0).astype(np.uint8), "L")
    return Image.fromarray(np.round(np.clip(matte, 0, 1) * 255).astype(np.uint8), "L")


def save_matte_png(matte: np.ndarray, path: str | os.PathLike, threshold: float | None = None) -> Path:
    """matte_image written atomically (a temporary file beside path, then a rename)."""
    return save_png(matte_image(matte, threshold), path)
