"""Ground-truth masks: PASCAL VOC's format (a palette or grey PNG whose values are class ids,
255 = ignore), other id schemes (Cityscapes' labelIds) through a label map, and matching masks
to images by file stem."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from npdeeplab.dataset.metrics import IGNORE
from npdeeplab.errors import ImageError, InputError
from npdeeplab.segmentation.images import FoundImage, find_images

LabelMap = tuple[tuple[int, int], ...]


def load_mask(source: str | os.PathLike | BinaryIO, classes: int, label_map: LabelMap | None = None) -> np.ndarray:
    """H x W uint8 class ids (IGNORE where not labelled); with a label map, source ids are mapped and
    unmapped ids become IGNORE. ImageError for an unreadable mask or an id the model has no class for."""
    name = str(getattr(source, "name", source))
    try:
        with Image.open(source) as image:
            image.load()
            ids = _ids(image, name)
    except UnidentifiedImageError:
        raise ImageError(f"mask {name!r} is not an image Pillow can read") from None
    except OSError as error:
        raise ImageError(f"cannot read mask {name!r}: {error}") from None
    if label_map is not None:
        table = np.full(max(int(ids.max()) + 1, 256), IGNORE, dtype=np.uint8)
        for source_id, class_id in label_map:
            if source_id < table.size:
                table[source_id] = class_id
        ids = table[ids]
    wrong = (ids >= classes) & (ids != IGNORE)
    if wrong.any():
        hint = "fix the label map" if label_map is not None else "--label-map maps other ids"
        raise ImageError(f"mask {name!r} holds class id {int(ids[wrong].max())}, but the model has {classes} classes "
                         f"(0..{classes - 1}, {IGNORE} = ignore); {hint}")
    return ids.astype(np.uint8)


def _ids(image: Image.Image, name: str) -> np.ndarray:
    if image.mode in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
        return np.asarray(image).astype(np.int64)
    if image.mode in ("RGB", "RGBA"):
        pixels = np.asarray(image)[..., :3]
        if (pixels == pixels[..., :1]).all():  # grey stored as RGB
            return pixels[..., 0].astype(np.int64)
    raise ImageError(f"mask {name!r} is a {image.mode} image in colour: give class ids, as a palette or grey PNG")


def read_label_map(path: str | os.PathLike) -> LabelMap:
    """{source_id: class_id} from a JSON file, e.g. Cityscapes' labelIds onto trainIds."""
    try:
        data = json.loads(Path(path).read_text())
        pairs = tuple(sorted((int(k), int(v)) for k, v in data.items()))
    except FileNotFoundError:
        raise InputError(f"label map {str(path)!r} does not exist") from None
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise InputError(f"--label-map {str(path)!r} must be a JSON object {{source_id: class_id}}: {error}") from None
    if any(not 0 <= k < 65536 or not 0 <= v <= IGNORE for k, v in pairs):
        raise InputError(f"--label-map {str(path)!r}: ids must be 0..65535, class ids 0..255 (255 = ignore)")
    return pairs


@dataclass(frozen=True)
class Matched:
    pairs: list[tuple[FoundImage, Path]]
    without_mask: list[FoundImage]  # images with no mask of their stem
    without_image: list[Path]  # masks with no image of their stem


def match_masks(images: str | os.PathLike, truth: str | os.PathLike, suffix: str = "") -> Matched:
    """Pair images with masks of the same file stem (a mask's stem may end in suffix, e.g.
    `_gtFine_labelIds`). One image and one mask file are paired whatever their names."""
    found = find_images([images]).images
    if Path(truth).is_file() and not Path(images).is_dir():
        return Matched([(found[0], Path(truth).absolute())], [], [])
    masks: dict[str, Path] = {}
    for mask in find_images([truth]).images:
        stem = mask.path.stem.removesuffix(suffix) if suffix else mask.path.stem
        if stem in masks:
            raise ImageError(f"masks {masks[stem]} and {mask.path} share the stem {stem!r}: which is the ground truth?")
        masks[stem] = mask.path
    pairs = [(image, masks[image.path.stem]) for image in found if image.path.stem in masks]
    used = {mask for _, mask in pairs}
    return Matched(pairs, [i for i in found if i.path.stem not in masks], [m for m in masks.values() if m not in used])
