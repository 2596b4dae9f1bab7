"""`npdeeplab evaluate MODEL IMAGES GROUND_TRUTH [--compare MODEL_B] [--label-map FILE] [--json]
[--plot confusion.png] [--workers N | --dask ADDRESS|local:N]`: mIoU and its confusion matrix
against ground-truth masks, over a whole dataset."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
from tqdm import tqdm

from npdeeplab.commands import add_numerics_option
from npdeeplab.dataset.masks import Matched, match_masks, read_label_map
from npdeeplab.dataset.metrics import IGNORE, Scores, scores
from npdeeplab.dataset.options import add_scale_options, where_to_run
from npdeeplab.dataset.plot import plot_confusion
from npdeeplab.dataset.runner import run_ordered
from npdeeplab.dataset.sources import FileBytes, read_source
from npdeeplab.dataset.tasks import EvaluateTask
from npdeeplab.errors import ImageError, InputError
from npdeeplab.segmentation import load_segmenter
from npdeeplab.segmentation.images import DEFAULT_MAX_PIXELS
from npdeeplab.zoo import resolve_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="mIoU, pixel accuracy and the confusion matrix against ground-truth masks",
        description=(
            "Segment every image and compare it with its ground-truth mask (same file stem), in the format of "
            f"PASCAL VOC's SegmentationClass PNGs: a palette or grey image of class ids, {IGNORE} = ignore. "
            "The confusion matrix is summed over the whole dataset; each class's IoU is TP / (TP + FP + FN) "
            "from it, and mIoU is the mean over the classes present in the ground truth (as the VOC devkit "
            "computes it on a full dataset; a class absent from the ground truth has no IoU, null in --json). "
            "Also pixel accuracy and frequency-weighted IoU. Each mask must have its image's size."
        ),
    )
    parser.add_argument("model", help="registry name or .tflite path")
    parser.add_argument("images", help="an image, or a directory of images")
    parser.add_argument("ground_truth", metavar="GROUND_TRUTH", help="its mask, or a directory of masks")
    parser.add_argument("--compare", metavar="MODEL_B",
                        help="also evaluate a second model on the same images (e.g. the quantized twin): mIoU and "
                             "per-class deltas (B - A), and the share of pixels where the two agree")
    parser.add_argument("--label-map", metavar="FILE.json",
                        help="a JSON object {mask_id: class_id} (e.g. Cityscapes labelIds onto trainIds); "
                             f"ids it does not map are ignored ({IGNORE})")
    parser.add_argument("--mask-suffix", default="", metavar="TEXT",
                        help="masks' stems end in TEXT after the image's stem (e.g. _gtFine_labelIds)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--plot", metavar="confusion.png", help="write the row-normalised confusion matrix as a PNG")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help=f"refuse images with more pixels (default {DEFAULT_MAX_PIXELS:,}; 0: no limit)")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba"), default=None, help="kernel backend")
    add_numerics_option(parser)
    add_scale_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    label_map = read_label_map(args.label_map) if args.label_map is not None else None
    if args.plot is not None and not args.plot.lower().endswith(".png"):
        raise InputError(f"--plot writes a PNG: give a path ending in .png, got {args.plot!r}")
    matched = match_masks(args.images, args.ground_truth, args.mask_suffix)
    _say_unmatched(matched, args)
    models = [args.model] + ([args.compare] if args.compare else [])
    names = _class_names(models, args)
    task = EvaluateTask(tuple(_model(m, args.send_bytes) for m in models), len(names), args.backend,
                        args.numerics, args.max_pixels, label_map)
    confusions = [np.zeros((len(names), len(names)), dtype=np.int64) for _ in models]
    agreeing = pixels = 0
    with where_to_run(args, len(matched.pairs)) as where:
        pairs = ((read_source(i.path, args.send_bytes), read_source(m, args.send_bytes)) for i, m in matched.pairs)
        results = run_ordered(task, pairs, workers=where.workers, client=where.client)
        try:
            for counts in tqdm(results, total=len(matched.pairs), desc="evaluating", unit="image", disable=None,
                               file=sys.stderr):
                if isinstance(counts, Exception):
                    raise counts
                for total, confusion in zip(confusions, counts.confusions, strict=True):
                    total += confusion
                agreeing, pixels = agreeing + counts.agreeing, pixels + counts.pixels
        finally:
            results.close()
    found = [scores(c) for c in confusions]
    document = _document(args.model, found[0], confusions[0], names, matched)
    if args.compare:
        document["compare"] = _comparison(args.compare, found, confusions[1], names, agreeing / pixels)
    if args.plot is not None:
        panels = [(f"{m}: mIoU {_number(s.miou)}", c) for m, s, c in zip(models, found, confusions, strict=True)]
        plot_confusion(panels, names, args.plot)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print("\n".join(table(document, names)))
    return 0


def _model(model: str, as_bytes: bool) -> str | FileBytes:
    if not as_bytes:
        return model
    path = resolve_model(model)
    return FileBytes(path.name, path.read_bytes())


def _class_names(models: list[str], args: argparse.Namespace) -> tuple[str, ...]:
    names = [load_segmenter(m, args.backend, numerics=args.numerics)[1].labels for m in models]
    if len(names) == 2 and len(names[0]) != len(names[1]):
        raise InputError(f"{models[0]} has {len(names[0])} classes but {models[1]} has {len(names[1])}: "
                         "--compare needs two models of the same classes")
    return tuple(names[0])


def _say_unmatched(matched: Matched, args: argparse.Namespace) -> None:
    if not matched.pairs:
        raise ImageError(f"no image in {args.images!r} has a mask of the same file stem in {args.ground_truth!r}")
    if matched.without_mask:
        shown = ", ".join(str(i.name) for i in matched.without_mask[:5])
        more = f" and {len(matched.without_mask) - 5} more" if len(matched.without_mask) > 5 else ""
        print(f"npdeeplab: {len(matched.without_mask)} image(s) have no mask and are left out: {shown}{more}",
              file=sys.stderr)


def _per_class(values: list[float | None], names: tuple[str, ...]) -> dict[str, float | None]:
    return {name: None if v is None else round(v, 6) for name, v in zip(names, values, strict=True)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _document(
    model: str, found: Scores, confusion: np.ndarray, names: tuple[str, ...], matched: Matched
) -> dict[str, Any]:
    return {
        "model": model, "miou": _round(found.miou), "pixel_accuracy": _round(found.pixel_accuracy),
        "fw_iou": _round(found.fw_iou), "per_class": _per_class(found.iou, names), "confusion": confusion.tolist(),
        "classes": list(names), "miou_over": "the classes present in the ground truth",
        "images": len(matched.pairs), "pixels": found.pixels,
        "images_without_mask": [str(i.path) for i in matched.without_mask],
    }


def _comparison(
    model: str, found: list[Scores], confusion: np.ndarray, names: tuple[str, ...], agreement: float
) -> dict[str, Any]:
    a, b = found
    deltas = [None if x is None or y is None else y - x for x, y in zip(a.iou, b.iou, strict=True)]
    return {
        "model": model, "miou": _round(b.miou), "pixel_accuracy": _round(b.pixel_accuracy), "fw_iou": _round(b.fw_iou),
        "per_class": _per_class(b.iou, names), "confusion": confusion.tolist(),
        "miou_delta": None if a.miou is None or b.miou is None else round(b.miou - a.miou, 6),
        "per_class_delta": _per_class(deltas, names), "pixel_agreement": round(agreement, 6),
    }


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(document: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """The scores as text: a headline, then one row per class present in the ground truth."""
    other = document.get("compare")
    present = [n for n in names if document["per_class"][n] is not None]
    lines = [f"{document['model']} on {document['images']} image(s), {document['pixels']:,} labelled pixels",
             f"mIoU {_number(document['miou'])} (mean over the {len(present)} classes in the ground truth), "
             f"pixel accuracy {_number(document['pixel_accuracy'])}, frequency-weighted IoU "
             f"{_number(document['fw_iou'])}"]
    if other is not None:
        lines.append(f"{other['model']}: mIoU {_number(other['miou'])} ({_signed(other['miou_delta'])}), pixel "
                     f"accuracy {_number(other['pixel_accuracy'])}; the two models agree on "
                     f"{100 * other['pixel_agreement']:.2f}% of pixels")
    width = max(len(n) for n in [*present, "class"])
    lines.append(f"{'class':<{width}}  {'IoU':>6}" + (f"  {'IoU B':>6}  {'B - A':>7}" if other else ""))
    for name in present:
        row = f"{name:<{width}}  {_number(document['per_class'][name]):>6}"
        if other is not None:
            row += f"  {_number(other['per_class'][name]):>6}  {_signed(other['per_class_delta'][name]):>7}"
        lines.append(row)
    return lines


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"
