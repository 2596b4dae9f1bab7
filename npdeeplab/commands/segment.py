"""`npdeeplab segment IMAGE_OR_DIR... [--model NAME|PATH] [-o OUT] [--overlay PATH] [--json] [--keep-going]`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from npdeeplab.errors import ImageError, InputError
from npdeeplab.segmentation import SegmentationResult, load_segmenter, segment
from npdeeplab.segmentation.images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, FoundImage, find_images, load_image
from npdeeplab.segmentation.palette import save_png
from npdeeplab.zoo import DEFAULT_MODEL

PARTIAL_FAILURE = 1


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment images into PASCAL VOC classes",
        description=(
            "Segment images: each is stretched to the model's input size with a bilinear filter, "
            "normalised as the model's registry entry says, run, and its logits scaled back to the "
            "image's size before the per-pixel argmax. Writes the label map as a palette PNG in the "
            "format of PASCAL VOC's SegmentationClass files. Without --keep-going every image is read "
            "before anything is written, and one bad image stops the run (exit 2); with it, every image "
            "that works is written and the failures are listed (exit 1)."
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
    parser.add_argument("--keep-going", action="store_true",
                        help="write every image that works, list the ones that fail, exit 1 if any did")
    parser.add_argument("--recursive", action="store_true",
                        help="also take images from subfolders (outputs keep the subfolder layout)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help=f"refuse images with more pixels (default {DEFAULT_MAX_PIXELS:,}; 0: no limit)")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba"), default=None, help="kernel backend")
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Job:
    image: FoundImage
    mask: Path
    overlay: Path | None


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.max_pixels < 0:
        raise InputError(f"--max-pixels must be 0 (no limit) or more, got {args.max_pixels}")
    found = find_images(args.images, recursive=args.recursive)
    if found.skipped_folders:
        names = ", ".join(str(p) for p in found.skipped_folders[:3])
        more = f" and {len(found.skipped_folders) - 3} more" if len(found.skipped_folders) > 3 else ""
        print(f"npdeeplab: skipped {len(found.skipped_folders)} subfolder(s) ({names}{more}); "
              "--recursive takes their images too", file=sys.stderr)
    single = len(found.images) == 1 and not Path(args.images[0]).is_dir()
    masks = destinations(args.output, found.images, single, "mask", "-o", default_dir=Path())
    overlays = destinations(args.overlay, found.images, single, "overlay", "--overlay") if args.overlay else None
    jobs = [Job(image, mask, overlays[i] if overlays else None) for i, (image, mask) in
            enumerate(zip(found.images, masks, strict=True))]
    if not args.keep_going:
        check_readable(jobs, args.max_pixels)  # every input readable before anything is written
    _, spec = load_segmenter(args.model, args.backend)
    if spec.output in ("probability", "logit") and not args.json:
        print(f"npdeeplab: {spec.reading}", file=sys.stderr)
    reports, failures = [], []
    progress = tqdm(jobs, desc="segmenting", unit="image", disable=None, file=sys.stderr)
    for job in progress:
        try:
            result = segment(job.image.path, args.model, backend=args.backend, max_pixels=args.max_pixels)
        except ImageError as error:
            if not args.keep_going:
                raise
            failures.append((job.image.path, str(error)))
            reports.append({"image": str(job.image.path), "error": str(error)})
            continue
        write_outputs(job, result, args.alpha)
        reports.append(report(job, result))
        if not args.json:
            tqdm.write(line(job, result), file=sys.stdout)
    if args.json:
        print(json.dumps(reports, indent=2))
    if failures:
        print(f"npdeeplab: {len(failures)} of {len(jobs)} images failed:", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        return PARTIAL_FAILURE
    return 0


def destinations(
    option: str | None, images: list[FoundImage], single: bool, kind: str, flag: str, default_dir: Path | None = None
) -> list[Path]:
    """Where each image's output goes: the path given (one image) or <dir>/<subfolders>/<stem>_<kind>.png."""
    if single and option is not None and not Path(option).is_dir():
        target = Path(option)
        if not target.parent.exists():
            raise ImageError(f"cannot write {option!r}: directory {str(target.parent.absolute())!r} does not exist")
        return [target]
    folder = Path(option) if option is not None else default_dir
    if folder is None:
        raise ImageError(f"no destination for the {kind} images")
    if folder.suffix.lower() in IMAGE_SUFFIXES and not folder.is_dir():
        raise ImageError(
            f"{flag} {option} names one file, but {len(images)} images were given; give a directory for their {kind}s"
        )
    if folder.exists() and not folder.is_dir():
        raise ImageError(f"{str(folder.absolute())!r} must be a directory when segmenting several images")
    paths = [folder / image.name.parent / f"{image.name.stem}_{kind}.png" for image in images]
    first_with: dict[Path, Path] = {}
    for image, path in zip(images, paths, strict=True):
        if path in first_with:
            raise ImageError(
                f"{first_with[path]} and {image.path} share the file name stem {image.name.stem!r}, so both "
                f"{kind}s would be written to {path}; rename one, or segment them separately"
            )
        first_with[path] = image.path
    return paths


def check_readable(jobs: list[Job], max_pixels: int) -> None:
    """Open and decode every image once, with a progress bar when there are many."""
    checking = tqdm(jobs, desc="checking images", unit="image", disable=None if len(jobs) > 1 else True,
                    file=sys.stderr, leave=False)
    for job in checking:
        load_image(job.image.path, max_pixels)


def write_outputs(job: Job, result: SegmentationResult, alpha: float) -> None:
    """The mask (and overlay), creating their folders only now: a run that fails earlier leaves nothing."""
    job.mask.parent.mkdir(parents=True, exist_ok=True)
    result.save_mask(job.mask)
    if job.overlay is not None:
        job.overlay.parent.mkdir(parents=True, exist_ok=True)
        save_png(result.overlay(alpha), job.overlay)


def report(job: Job, result: SegmentationResult) -> dict:
    data = {"image": str(job.image.path), "mask": str(job.mask), **result.to_dict()}
    if job.overlay is not None:
        data["overlay"] = str(job.overlay)
    return data


def line(job: Job, result: SegmentationResult) -> str:
    """`astronaut.png  person 46.5%  background 53.5%  -> astronaut_mask.png, astronaut_overlay.png`."""
    classes = "  ".join(f"{a.name} {100 * a.share:.1f}%" for a in result.areas())
    written = ", ".join(str(p) for p in (job.mask, job.overlay) if p is not None)
    return f"{job.image.name}  {classes}  -> {written}"
