"""`npdeeplab segment IMAGE_OR_DIR... [--model NAME|PATH] [-o OUT] [--overlay PATH] [--json] [--keep-going]`,
for person models `[--threshold T] [--background blur|COLOR|IMAGE] [--composite PATH] [--animate OUT.gif]`,
and for whole datasets `[--workers N] [--dask ADDRESS|local:N] [--resume] [--summary FILE.json]`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from npdeeplab.commands import add_numerics_option
from npdeeplab.dataset.options import add_scale_options, where_to_run
from npdeeplab.dataset.runner import run_ordered
from npdeeplab.dataset.sources import FileBytes, read_source
from npdeeplab.dataset.summary import DatasetSummary, written
from npdeeplab.dataset.tasks import SegmentTask
from npdeeplab.errors import ImageError, InputError
from npdeeplab.files import atomic_file
from npdeeplab.segmentation import SegmentationResult, load_segmenter
from npdeeplab.segmentation.animation import DEFAULT_FRAME_MS, Animation
from npdeeplab.segmentation.images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, FoundImage, find_images, load_image
from npdeeplab.segmentation.matte import BLUR_RADIUS_PER_512, parse_background
from npdeeplab.segmentation.palette import save_png
from npdeeplab.zoo import DEFAULT_MODEL, OUTPUT_KINDS, resolve_model

PARTIAL_FAILURE = 1


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment images into PASCAL VOC classes, or people from their background",
        description=(
            "Segment images: each is stretched to the model's input size with a bilinear filter, "
            "normalised as the model's registry entry says, run, and its logits scaled back to the "
            "image's size before the per-pixel argmax. Writes the label map as a palette PNG in the "
            "format of PASCAL VOC's SegmentationClass files; for person (foreground) models, the soft "
            "matte as an 8-bit greyscale PNG, and with --background the person composited onto a new "
            "background. Without --keep-going every image is read "
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
    parser.add_argument("--json", action="store_true",
                        help='print one JSON document instead of the table: {"images": [one report per image], '
                             '"summary": {images, failures, images/s, class areas over the dataset}}')
    parser.add_argument("--keep-going", action="store_true",
                        help="write every image that works, list the ones that fail, exit 1 if any did")
    parser.add_argument("--recursive", action="store_true",
                        help="also take images from subfolders (outputs keep the subfolder layout)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help=f"refuse images with more pixels (default {DEFAULT_MAX_PIXELS:,}; 0: no limit)")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba"), default=None, help="kernel backend")
    add_numerics_option(parser)
    reading = parser.add_argument_group(
        "how the model is fed and read (default: its registry entry, else what its graph suggests)")
    reading.add_argument("--output-kind", metavar="KIND",
                         help=f"read the output as one of {', '.join(OUTPUT_KINDS)}")
    reading.add_argument("--input-range", metavar="LOW,HIGH",
                         help="map pixels 0..255 onto this range (e.g. 0,1 or -1,1 or 0,255)")
    reading.add_argument("--input-size", metavar="HxW",
                         help="resize the model's input first (models that take any size, as BodyPix)")
    reading.add_argument("--output-name", metavar="NAME", help="which output to read, by tensor name")
    person = parser.add_argument_group("person (foreground) models")
    person.add_argument("--threshold", metavar="T",
                        help="write a binary 0/255 mask of matte > T instead of the soft matte (labels use T)")
    person.add_argument("--background", metavar="blur|COLOR|IMAGE",
                        help="composite the person onto a blurred background, a colour (name or #rrggbb) or an image")
    person.add_argument("--composite", metavar="PATH",
                        help="composite PNG (one image; default <stem>_composite.png beside the mask) or directory")
    person.add_argument("--blur-radius", metavar="R",
                        help=f"Gaussian blur of --background blur, in pixels (default {BLUR_RADIUS_PER_512:g} per 512 "
                             "px of the photo's longer side)")
    parser.add_argument("--animate", metavar="OUT.gif",
                        help="also write every image's overlay (class models) or composite (person models), in order, "
                             "as one looping GIF; masks are then written only with -o")
    parser.add_argument("--frame-ms", metavar="MS", default=str(DEFAULT_FRAME_MS),
                        help=f"--animate: milliseconds per frame (default {DEFAULT_FRAME_MS})")
    dataset = parser.add_argument_group("whole datasets")
    dataset.add_argument("--resume", action="store_true",
                         help="skip images whose outputs exist and read as whole PNGs (an interrupted run goes on "
                              "where it stopped; a corrupt output is redone)")
    dataset.add_argument("--summary", metavar="FILE.json",
                         help="also write the run's summary (images, failures, skipped, images/s, class areas over "
                              "the dataset) as JSON; it is printed on stderr for several images")
    add_scale_options(parser)
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Job:
    image: FoundImage
    mask: Path | None  # None: --animate without -o writes no masks
    overlay: Path | None
    composite: Path | None = None


@dataclass(frozen=True)
class Options:
    """The reading and person options, parsed and checked before anything runs."""

    output_kind: str | None
    input_range: tuple[float, float] | None
    input_size: tuple[int, int] | None
    threshold: float | None
    background: str | tuple[int, int, int] | Path | None
    blur_radius: float | None
    frame_ms: int

    def reading(self) -> dict:
        return {"output_kind": self.output_kind, "input_range": self.input_range, "input_size": self.input_size}


def parse_options(args: argparse.Namespace) -> Options:
    """Every new option as a value, or one InputError naming the option."""
    if args.output_kind is not None and args.output_kind not in OUTPUT_KINDS:
        raise InputError(f"--output-kind {args.output_kind!r} is not one of {', '.join(OUTPUT_KINDS)}")
    input_range = None
    if args.input_range is not None:
        low, high = _numbers(args.input_range, ",", "--input-range", "LOW,HIGH, e.g. 0,1 or -1,1")
        if not low < high:
            raise InputError(f"--input-range {args.input_range}: LOW must be under HIGH")
        input_range = (low, high)
    input_size = None
    if args.input_size is not None:
        height, width = _numbers(args.input_size.lower(), "x", "--input-size", "HxW, e.g. 257x257")
        if height != int(height) or width != int(width) or height < 1 or width < 1:
            raise InputError(f"--input-size {args.input_size}: height and width are whole numbers, 1 or more")
        input_size = (int(height), int(width))
    threshold = _number(args.threshold, "--threshold") if args.threshold is not None else None
    if threshold is not None and not 0 <= threshold < 1:
        raise InputError(f"--threshold must be at least 0 and under 1, got {args.threshold}")
    blur_radius = _number(args.blur_radius, "--blur-radius") if args.blur_radius is not None else None
    if blur_radius is not None and blur_radius < 0:
        raise InputError(f"--blur-radius must be 0 or more, got {args.blur_radius}")
    frame_ms = _number(args.frame_ms, "--frame-ms")
    if frame_ms != int(frame_ms) or frame_ms < 1:
        raise InputError(f"--frame-ms must be a whole number of milliseconds, 1 or more; got {args.frame_ms}")
    background = None
    if args.background is not None or args.composite is not None:
        background = parse_background(args.background or "blur")
        if isinstance(background, Path):
            load_image(background)  # a background that cannot be read stops the run before anything is written
    return Options(args.output_kind, input_range, input_size, threshold, background, blur_radius, int(frame_ms))


def _number(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{flag} takes a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InputError(f"{flag} takes a finite number, got {text!r}")
    return value


def _numbers(text: str, separator: str, flag: str, form: str) -> tuple[float, float]:
    parts = text.split(separator)
    if len(parts) != 2:
        raise InputError(f"{flag} takes {form}; got {text!r}")
    return _number(parts[0].strip(), flag), _number(parts[1].strip(), flag)


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.max_pixels < 0:
        raise InputError(f"--max-pixels must be 0 (no limit) or more, got {args.max_pixels}")
    options = parse_options(args)
    animation_path = gif_destination(args.animate) if args.animate is not None else None
    found = find_images(args.images, recursive=args.recursive)
    if found.skipped_folders:
        names = ", ".join(str(p) for p in found.skipped_folders[:3])
        more = f" and {len(found.skipped_folders) - 3} more" if len(found.skipped_folders) > 3 else ""
        print(f"npdeeplab: skipped {len(found.skipped_folders)} subfolder(s) ({names}{more}); "
              "--recursive takes their images too", file=sys.stderr)
    jobs = plan(args, found.images, options)
    if not args.keep_going:
        check_readable(jobs, args.max_pixels)  # every input readable before anything is written
    _, spec = load_segmenter(args.model, args.backend, output_name=args.output_name, numerics=args.numerics,
                             **options.reading())
    if not spec.foreground:
        for flag, value in (("--threshold", args.threshold), ("--background", args.background),
                            ("--composite", args.composite)):
            if value is not None:
                raise InputError(f"{flag} needs a person (foreground) model; {args.model} is read as {spec.reading}")
    if (spec.foreground or not spec.origin.startswith("from the registry")) and not args.json:
        cut = 0.5 if options.threshold is None else options.threshold
        print(f"npdeeplab: {spec.describe(cut)}; {spec.input_text}", file=sys.stderr)
    if args.resume and animation_path is not None:
        raise InputError("--resume cannot go with --animate: the GIF needs every frame")
    summary_path = _summary_destination(args.summary)
    summary = DatasetSummary(spec.labels, images=len(jobs))
    reports, failures = segment_all(args, jobs, options, animation_path, summary, spec.foreground)
    summary.finish()
    if args.json:
        print(json.dumps({"images": reports, "summary": summary.to_dict()}, indent=2))
    if len(jobs) > 1:
        for text in summary.lines():
            print(f"npdeeplab: {text}", file=sys.stderr)
    if summary_path is not None:
        with atomic_file(summary_path) as f:
            f.write((json.dumps(summary.to_dict(), indent=2) + "\n").encode())
    if failures:
        print(f"npdeeplab: {len(failures)} of {len(jobs)} images failed:", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        return PARTIAL_FAILURE
    return 0


def segment_all(
    args: argparse.Namespace, jobs: list[Job], options: Options, animation_path: Path | None, summary: DatasetSummary,
    foreground: bool = False,
) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Run every job (skipping those already written, with --resume) here, in a pool or on Dask, and
    write the outputs here, in order, as they come back. Returns the reports and the failures."""
    done = [args.resume and written([job.mask, job.overlay, job.composite]) for job in jobs]
    todo = [job for job, skip in zip(jobs, done, strict=True) if not skip]
    out = Outputs(args, options, animation_path, summary)
    with where_to_run(args, len(todo)) as where:
        summary.where = where.describe()
        sources = (read_source(job.image.path, args.send_bytes) for job in todo)
        results = run_ordered(segment_task(args, options), sources, workers=where.workers, client=where.client)
        progress = tqdm(total=len(todo), desc="segmenting", unit="image", disable=None, file=sys.stderr)
        try:
            for job, skip in zip(jobs, done, strict=True):
                if skip:
                    out.skipped(job, foreground)
                    continue
                result = next(results)
                progress.update()
                if isinstance(result, Exception):
                    out.failed(job, result)
                else:
                    out.write(job, result)
        finally:
            results.close()  # an error or an interrupt: the pool or the cluster's tasks stop here
            progress.close()
    out.save_animation()
    return out.reports, out.failures


@dataclass
class Outputs:
    """The outputs of a run, written in the images' order, and what is reported of each."""

    args: argparse.Namespace
    options: Options
    animation_path: Path | None
    summary: DatasetSummary

    def __post_init__(self) -> None:
        self.animation = Animation(self.options.frame_ms) if self.animation_path is not None else None
        self.reports: list[dict] = []
        self.failures: list[tuple[Path, str]] = []

    def write(self, job: Job, result: SegmentationResult) -> None:
        result = dataclasses.replace(result, model=str(self.args.model))  # not a worker's copy of the model
        self.summary.segmented += 1
        self.summary.add_labels(result.labels)
        frame = write_outputs(job, result, self.args.alpha, self.options, self.animation is not None)
        if self.animation is not None and frame is not None:
            self.animation.add(frame)
        frames = len(self.animation) if self.animation else 0
        self.reports.append(report(job, result, self.animation_path, frames))
        if not self.args.json:
            tqdm.write(line(job, result, self.animation_path, frames), file=sys.stdout)

    def failed(self, job: Job, error: Exception) -> None:
        if not (self.args.keep_going and isinstance(error, ImageError)):
            raise error
        self.summary.failed += 1
        self.failures.append((job.image.path, str(error)))
        self.reports.append({"image": str(job.image.path), "error": str(error)})

    def skipped(self, job: Job, foreground: bool) -> None:
        self.summary.skipped += 1
        if job.mask is not None and not foreground:  # a class model's mask holds its label map
            self.summary.add_written_mask(job.mask)
        self.reports.append({"image": str(job.image.path), **({"mask": str(job.mask)} if job.mask else {}),
                             "skipped": "outputs already written"})
        if not self.args.json:
            tqdm.write(f"{job.image.name}  skipped: already written", file=sys.stdout)

    def save_animation(self) -> None:
        if self.animation is None or self.animation_path is None or not len(self.animation):
            return
        self.animation_path.parent.mkdir(parents=True, exist_ok=True)
        self.animation.save(self.animation_path)
        if not self.args.json:
            print(f"{self.animation_path}  {len(self.animation)} frames, {self.options.frame_ms} ms each, looping",
                  file=sys.stdout)


def segment_task(args: argparse.Namespace, options: Options) -> SegmentTask:
    """The per-image work, with the model as its name or path, or (--send-bytes) as its bytes."""
    model: str | FileBytes = str(args.model)
    if args.send_bytes:
        path = resolve_model(args.model)
        model = FileBytes(path.name, path.read_bytes())
    return SegmentTask(model, args.backend, args.numerics, args.max_pixels, args.output_name,
                       threshold=options.threshold, **options.reading())


def _summary_destination(option: str | None) -> Path | None:
    if option is None:
        return None
    path = Path(option)
    if path.is_dir() or not path.parent.exists():
        raise InputError(f"--summary {option!r}: give a file name in an existing directory")
    return path


def plan(args: argparse.Namespace, images: list[FoundImage], options: Options) -> list[Job]:
    """Where each image's mask, overlay and composite go, all checked before anything runs."""
    single = len(images) == 1 and not Path(args.images[0]).is_dir()
    masks: list[Path | None]
    if args.animate is not None and args.output is None:
        masks = [None] * len(images)  # an animation of many frames: no mask files unless asked for
    else:
        masks = list(destinations(args.output, images, single, "mask", "-o", default_dir=Path()))
    overlays = destinations(args.overlay, images, single, "overlay", "--overlay") if args.overlay else None
    composites: list[Path | None] = [None] * len(images)
    if args.composite is not None:
        composites = list(destinations(args.composite, images, single, "composite", "--composite"))
    elif options.background is not None:  # beside the mask
        composites = [None if mask is None else mask.parent / f"{image.name.stem}_composite.png"
                      for image, mask in zip(images, masks, strict=True)]
    return [Job(image, masks[i], overlays[i] if overlays else None, composites[i]) for i, image in enumerate(images)]


def gif_destination(option: str) -> Path:
    path = Path(option)
    if path.suffix.lower() != ".gif":
        raise InputError(f"--animate writes a GIF: give a path ending in .gif, got {option!r}")
    if path.is_dir():
        raise InputError(f"--animate {option!r} is a directory; give the GIF's file name")
    if not path.parent.exists():
        raise ImageError(f"cannot write {option!r}: directory {str(path.parent.absolute())!r} does not exist")
    return path


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


def write_outputs(
    job: Job, result: SegmentationResult, alpha: float, options: Options, animating: bool = False
) -> Image.Image | None:
    """The mask (and overlay, composite), creating their folders only now: a run that fails earlier
    leaves nothing. Person models' masks are the matte (8-bit grey), or with --threshold 0/255.
    Returns the animation frame: the composite for person models, else the overlay."""
    if job.mask is not None:
        job.mask.parent.mkdir(parents=True, exist_ok=True)
        if result.matte is not None:
            result.save_matte(job.mask, options.threshold)
        else:
            result.save_mask(job.mask)
    overlay = None
    if job.overlay is not None or (animating and result.matte is None):
        overlay = result.overlay(alpha)
    if job.overlay is not None and overlay is not None:
        job.overlay.parent.mkdir(parents=True, exist_ok=True)
        save_png(overlay, job.overlay)
    composite = None
    if result.matte is not None and (job.composite is not None or animating):
        composite = result.composite(options.background or "blur", options.blur_radius)
    if job.composite is not None and composite is not None:
        job.composite.parent.mkdir(parents=True, exist_ok=True)
        save_png(composite, job.composite)
    return composite if result.matte is not None else overlay


def report(job: Job, result: SegmentationResult, animation: Path | None = None, frame: int = 0) -> dict:
    data = {"image": str(job.image.path), **({"mask": str(job.mask)} if job.mask else {}), **result.to_dict()}
    if job.overlay is not None:
        data["overlay"] = str(job.overlay)
    if job.composite is not None:
        data["composite"] = str(job.composite)
    if animation is not None:
        data["animation"], data["frame"] = str(animation), frame
    return data


def line(job: Job, result: SegmentationResult, animation: Path | None = None, frame: int = 0) -> str:
    """`astronaut.png  person 46.5%  background 53.5%  -> astronaut_mask.png, astronaut_overlay.png`."""
    classes = "  ".join(f"{a.name} {100 * a.share:.1f}%" for a in result.areas())
    written = [str(p) for p in (job.mask, job.overlay, job.composite) if p is not None]
    if animation is not None:
        written.append(f"frame {frame} of {animation}")
    return f"{job.image.name}  {classes}  -> {', '.join(written)}"
