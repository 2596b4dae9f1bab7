"""`npdeeplab segment IMAGE_OR_DIR... [--model NAME|PATH] [-o OUT] [--overlay PATH] [--alpha A] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from npdeeplab.errors import ImageError, InputError
from npdeeplab.segmentation import SegmentationResult, load_segmenter, segment
from npdeeplab.segmentation.images import find_images, load_image
from npdeeplab.zoo import DEFAULT_MODEL


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment images into PASCAL VOC classes",
        description=(
            "Segment images: each is stretched to the model's input size with a bilinear filter, "
            "normalised as the model's registry entry says, run, and its logits scaled back to the "
            "image's size before the per-pixel argmax. Writes the label map as a palette PNG in the "
            "format of PASCAL VOC's SegmentationClass files."
        ),
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files or directories of images")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"registry name or .tflite path (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "-o", "--output", help="mask PNG (one image; default <stem>_mask.png here) or output directory (several)"
    )
    parser.add_argument("--overlay", help="overlay PNG with a legend (one image) or directory (several)")
    parser.add_argument("--alpha", type=float, default=0.6, help="overlay opacity of class colours, 0..1 (0.6)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba"), default=None, help="kernel backend")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha must be between 0 and 1, got {args.alpha}")
    images = find_images(args.images)
    single = len(images) == 1 and not Path(args.images[0]).is_dir()
    for path in images:  # every input readable before anything is written
        load_image(path)
    masks = _destinations(args.output, images, single, "mask", default_dir=Path.cwd())
    overlays = _destinations(args.overlay, images, single, "overlay") if args.overlay else [None] * len(images)
    load_segmenter(args.model, args.backend)
    reports = []
    progress = tqdm(images, desc="segmenting", unit="image", disable=None, file=sys.stderr)
    for path, mask_path, overlay_path in zip(progress, masks, overlays, strict=True):
        result = segment(path, args.model, backend=args.backend)
        result.save_mask(mask_path)
        if overlay_path is not None:
            from npdeeplab.segmentation.palette import save_png

            save_png(result.overlay(args.alpha), overlay_path)
        reports.append(_report(path, result, mask_path, overlay_path))
        if not args.json:
            tqdm.write(_line(path, result), file=sys.stdout)
    if args.json:
        print(json.dumps(reports, indent=2))
    return 0


def _destinations(
    option: str | None, images: list[Path], single: bool, kind: str, default_dir: Path | None = None
) -> list[Path]:
    """Where each image's output goes: the path given (one image) or <dir>/<stem>_<kind>.png."""
    if single and option is not None and not Path(option).is_dir():
        target = Path(option)
        if not target.parent.exists():
            raise ImageError(f"cannot write {option!r}: directory {str(target.parent)!r} does not exist")
        return [target]
    folder = Path(option) if option is not None else default_dir
    if folder is None:
        raise ImageError(f"no destination for the {kind} images")
    if folder.exists() and not folder.is_dir():
        raise ImageError(f"{str(folder)!r} must be a directory when segmenting several images")
    names = [f"{p.stem}_{kind}.png" for p in images]
    if len(set(names)) != len(names):
        raise ImageError(f"two images share a file name stem, so their {kind} files would collide")
    folder.mkdir(parents=True, exist_ok=True)
    return [folder / name for name in names]


def _report(path: Path, result: SegmentationResult, mask: Path, overlay: Path | None) -> dict:
    report = {"image": str(path), "mask": str(mask), **result.to_dict()}
    if overlay is not None:
        report["overlay"] = str(overlay)
    return report


def _line(path: Path, result: SegmentationResult) -> str:
    classes = "  ".join(f"{a.name} {100 * a.share:.1f}%" for a in result.areas())
    return f"{path.name}  {classes}"
