"""The segmentation pipeline: real images in, VOC masks out, checked against ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS
from PIL import Image

import npdeeplab
from npdeeplab.errors import ImageError
from npdeeplab.segmentation.images import load_image, to_model_input
from npdeeplab.segmentation.palette import PALETTE


@pytest.mark.parametrize("backend", BACKENDS)
def test_coral_bird_check(backend, image_path):
    """Coral's own test: agreement / (2 - agreement) > 0.90 against the reference mask."""
    result = npdeeplab.segment(image_path("bird_segmentation.bmp"), backend=backend)
    mask = np.asarray(Image.open(image_path("bird_segmentation_mask.bmp")))
    assert result.labels.shape == mask.shape
    agreement = float((result.labels == mask).mean())
    assert agreement / (2 - agreement) > 0.90, f"agreement {agreement:.4f}"
    assert result.areas()[1].name == "bird"


@pytest.mark.parametrize("name, expected", [("astronaut.png", "person"), ("chelsea.png", "cat")])
def test_largest_foreground_class(image_path, name, expected):
    result = npdeeplab.segment(image_path(name))
    foreground = [a for a in result.areas() if a.name != "background"]
    assert foreground[0].name == expected, result.areas()
    assert sum(a.share for a in result.areas()) == pytest.approx(1.0)


def test_mask_png_is_a_voc_palette_image(image_path, tmp_path):
    result = npdeeplab.segment(image_path("chelsea.png"))
    path = result.save_mask(tmp_path / "mask.png")
    saved = Image.open(path)
    assert saved.mode == "P" and saved.size == (451, 300)
    assert np.array_equal(np.asarray(saved), result.labels)
    palette = np.array(saved.getpalette()[: 256 * 3], dtype=np.uint8).reshape(256, 3)
    assert np.array_equal(palette, PALETTE)
    assert tuple(PALETTE[8]) == (64, 0, 0) and tuple(PALETTE[15]) == (192, 128, 128)
    assert tuple(PALETTE[255]) == (224, 224, 192)
    assert [p.name for p in tmp_path.iterdir()] == ["mask.png"]  # no temporary left behind


def test_overlay_tints_classes_and_draws_a_legend(image_path):
    result = npdeeplab.segment(image_path("chelsea.png"))
    picture = np.asarray(result.overlay(alpha=0.6, legend=False), dtype=np.int16)
    original = np.asarray(result.image, dtype=np.int16)
    cat = result.labels == 8
    assert np.array_equal(picture[~cat], original[~cat])  # background untouched
    assert np.abs(picture[cat] - original[cat]).mean() > 5
    with_legend = np.asarray(result.overlay(alpha=0.6), dtype=np.int16)
    assert (with_legend[:40, :40] != picture[:40, :40]).any()
    assert "<img src='data:image/png;base64," in result._repr_html_() and "cat" in result._repr_html_()


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "I;16", "CMYK"])
def test_image_modes(image_path, tmp_path, mode):
    source = Image.open(image_path("chelsea.png")).convert("RGB")
    if mode == "I;16":
        grey = np.asarray(source.convert("L"), dtype=np.uint16) * 257
        converted = Image.new("I;16", source.size)
        converted.frombytes(grey.astype("<u2").tobytes())
    else:
        converted = source.convert(mode)
    path = tmp_path / f"image.{'tiff' if mode == 'CMYK' else 'png'}"
    converted.save(path)
    result = npdeeplab.segment(path)
    assert result.labels.shape == (300, 451)
    if mode == "I;16":
        grey = np.asarray(source.convert("L"), dtype=np.int16)
        assert np.abs(np.asarray(load_image(path))[..., 0] - grey).max() <= 1  # 16 bits scaled, not clipped
    assert result.areas()[0].name in ("cat", "background")


def test_exif_orientation_is_applied(image_path, tmp_path):
    source = Image.open(image_path("chelsea.png")).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    source.save(path, exif=exif.tobytes())
    result = npdeeplab.segment(path)
    assert result.labels.shape == (451, 300)


def test_arrays_and_pil_images_are_accepted(image_path):
    picture = Image.open(image_path("chelsea.png"))
    from_pil = npdeeplab.segment(picture)
    from_array = npdeeplab.segment(np.asarray(picture.convert("RGB")))
    assert np.array_equal(from_pil.labels, from_array.labels)
    assert from_pil.logits.shape == (257, 257, 21)


def test_model_input_is_stretched_and_normalised():
    image = Image.fromarray(np.full((10, 20, 3), 255, np.uint8))
    x = to_model_input(image, (257, 257), "float32", 127.5, 127.5)
    assert x.shape == (1, 257, 257, 3) and x.dtype == np.float32
    assert np.allclose(x, 1.0)


@pytest.mark.parametrize("content", [b"", b"plain text", b"\x89PNG\r\n\x1a\n truncated"])
def test_unreadable_images(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="bad.png"):
        load_image(path)
