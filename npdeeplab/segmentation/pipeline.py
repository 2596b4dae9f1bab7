"""Segment an image: image -> model input -> model outputs -> per-pixel class (and person matte) at
the image's own size.

How a model is fed and read (a ModelSpec) comes from the caller's options, else the model's registry
entry, else the graph. Outputs are read as (zoo.OUTPUT_KINDS): class logits, argmaxed after they are
scaled up to the image with bilinear interpolation (half-pixel centres), which gives smooth class
boundaries; class ids, scaled with nearest neighbour; or a foreground (person) score, which gives a
soft matte, the person probability at the image's size, and labels where it is over a threshold
(0.5). A one-channel probability (the graph ends in LOGISTIC, as MediaPipe's Selfie) is scaled up
as a probability; a one-channel logit (BodyPix's float_segments) and two-channel background/person
logits (Google Meet's models) are scaled up as logits, then go through the sigmoid (or the softmax
over the two, the sigmoid of their difference), as BodyPix does: the matte is as smooth, and its
threshold is exactly the logit's sign, as the label map has always been.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from npdeeplab.errors import InputError, ModelError, NpDeepLabError
from npdeeplab.kernels.resize import bilinear_taps, nearest_indices
from npdeeplab.runtime.inputs import random_array
from npdeeplab.runtime.interpreter import Interpreter
from npdeeplab.runtime.numerics import resolve_numerics
from npdeeplab.segmentation.images import ImageSource, load_image
from npdeeplab.segmentation.result import SegmentationResult
from npdeeplab.segmentation.spec import DEFAULT_THRESHOLD, ModelSpec, model_spec
from npdeeplab.zoo import DEFAULT_MODEL, ModelEntry, entry_for_path, registry, resolve_model

ROW_BLOCK = 64  # rows of the upsampled logits held at once


_interpreters: dict[tuple[str, str | None, tuple[int, int] | None, str | None],
                    tuple[Interpreter, ModelEntry | None]] = {}
_loading = threading.Lock()


def segment(
    image: ImageSource,
    model: str | os.PathLike = DEFAULT_MODEL,
    *,
    backend: str | None = None,
    interpreter: Interpreter | None = None,
    max_pixels: int | None = None,
    output_kind: str | None = None,
    input_range: tuple[float, float] | None = None,
    input_size: tuple[int, int] | None = None,
    output_name: str | None = None,
    threshold: float | None = None,
    numerics: str | None = None,
) -> SegmentationResult:
    """Segment one image (a path, a PIL image or an HxWx3 uint8 array) with a model name or path.

    output_kind (one of zoo.OUTPUT_KINDS), input_range ((low, high): pixels 0..255 mapped onto it)
    and output_name (which output to read) override the registry entry and what the graph suggests;
    input_size (height, width) resizes the model's input first (models that take any size, such as
    BodyPix); threshold (foreground models, default 0.5) is where the matte becomes labels;
    numerics (npdeeplab.runtime.numerics, default "reference") is whose rounding the model's
    quantized kernels reproduce (ignored with an interpreter, which has its own).
    Safe to call from several threads: a shared interpreter runs one image at a time.
    """
    picture = load_image(image, max_pixels)
    options = {"output_kind": output_kind, "input_range": input_range, "output_name": output_name}
    size = _input_size(input_size)
    if interpreter is None:
        interpreter, spec = load_segmenter(model, backend, input_size=size, numerics=numerics, **options)
    else:
        entry = entry_for_path(interpreter.model.source) if interpreter.model.source != "<bytes>" else None
        if size is not None:
            with interpreter.lock:
                resize_input(interpreter, size, str(model))
        spec = model_spec(interpreter, entry, **options)
    cut = _threshold(threshold, spec)
    batch = spec.model_input(picture)
    with interpreter.lock:  # set, invoke and get as one step, or another thread's image could slip in
        if not interpreter.allocated:
            interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
        interpreter.invoke()
        raw = {d["index"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
        names = {d["index"]: d["name"] for d in interpreter.get_output_details()}
    read = spec.output_tensor if spec.output_tensor is not None else next(iter(raw))
    output = raw[read][0]
    if spec.output != "labels":
        output = spec.real_output(output)
    matte = None
    if spec.foreground:
        matte, labels = foreground_at(output, spec, (picture.height, picture.width), cut)
    else:
        labels = labels_at(output, spec, (picture.height, picture.width))
    return SegmentationResult(
        labels,
        None if spec.output == "labels" else output,
        spec.labels,
        picture,
        str(model),
        spec.describe(cut) if spec.foreground else spec.reading,
        matte=matte,
        outputs=_by_name(raw, names),
        threshold=cut,
    )


def _by_name(raw: dict[int, np.ndarray], names: dict[int, str]) -> dict[str, np.ndarray]:
    """Outputs by tensor name (a name given twice gets its tensor index after it: name#12)."""
    out: dict[str, np.ndarray] = {}
    for index, value in raw.items():
        name = names[index] if names[index] not in out else f"{names[index]}#{index}"
        out[name] = value
    return out


def _threshold(threshold: float | None, spec: ModelSpec) -> float | None:
    if threshold is None:
        return DEFAULT_THRESHOLD if spec.foreground else None
    if not spec.foreground:
        raise InputError(f"a threshold applies to foreground (person) models; this one is read as {spec.reading}")
    if not 0 <= threshold < 1:
        raise InputError(f"the threshold must be at least 0 and under 1, got {threshold}")
    return float(threshold)


def _input_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
        raise InputError(f"an input size is (height, width), two positive integers; got {size}")
    return int(size[0]), int(size[1])


def labels_at(output: np.ndarray, spec: ModelSpec, size: tuple[int, int]) -> np.ndarray:
    """The model's output (one image, at the model's resolution) as class ids at size."""
    if spec.output == "labels":
        return nearest_labels(output[..., 0] if output.ndim == 3 else output, size)
    if spec.foreground:
        return foreground_at(output, spec, size)[1]
    return upsampled_argmax(output, size)


def foreground_at(
    output: np.ndarray, spec: ModelSpec, size: tuple[int, int], threshold: float | None = DEFAULT_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """(matte, labels) at size from a foreground output [h, w, C] (or [h, w]): the matte is the person
    probability, H x W float32, scaled up smoothly (see the module's docstring); labels are 1 where it
    is over the threshold."""
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    scores = output[..., None] if output.ndim == 2 else output
    if spec.output == "probability" or (spec.output == "two_class" and spec.softmaxed):
        channel = 1 if spec.output == "two_class" else 0
        up = upsampled_map(scores[..., channel:channel + 1], size, lambda block: block[..., 0], np.float32)
        matte = np.clip(np.nan_to_num(up, nan=0.0), 0, 1)
        return matte.astype(np.float32), (matte > threshold).astype(np.uint8)
    if spec.output == "two_class":
        z = upsampled_map(scores[..., :2], size, lambda block: block[..., 1] - block[..., 0], np.float32)
    else:
        z = upsampled_map(scores[..., :1], size, lambda block: block[..., 0], np.float32)
    z = np.nan_to_num(z, nan=-np.inf)
    with np.errstate(over="ignore"):
        matte = (1 / (1 + np.exp(-z))).astype(np.float32)
    cut = -np.inf if threshold == 0 else math.log(threshold / (1 - threshold))
    return matte, (z > cut).astype(np.uint8)  # z > logit(t) is sigmoid(z) > t, without sigmoid's rounding


def load_segmenter(
    model: str | os.PathLike,
    backend: str | None = None,
    *,
    input_size: tuple[int, int] | None = None,
    output_kind: str | None = None,
    input_range: tuple[float, float] | None = None,
    output_name: str | None = None,
    numerics: str | None = None,
) -> tuple[Interpreter, ModelSpec]:
    """An interpreter for the model (its input resized to input_size, or to its registry entry's
    size), loaded once per process, backend, size and numerics, and how to read it."""
    path = resolve_model(model)
    name = str(model)
    entry = registry()[name] if name in registry() else entry_for_path(path)
    size = _input_size(input_size) or (entry.input_size if entry is not None else None)
    numerics = resolve_numerics(numerics)
    key = (str(path), backend, size, numerics)
    with _loading:  # two threads asking at once share one interpreter
        if key not in _interpreters:
            interpreter = Interpreter(model_path=path, backend=backend, numerics=numerics)
            if size is not None:
                resize_input(interpreter, size, name)
            interpreter.allocate_tensors()
            _interpreters[key] = (interpreter, entry)
    interpreter, entry = _interpreters[key]
    return interpreter, model_spec(
        interpreter, entry, output_kind=output_kind, input_range=input_range, output_name=output_name
    )


def resize_input(interpreter: Interpreter, size: tuple[int, int], model: str = "the model") -> None:
    """Resize the image input to [1, height, width, channels] and allocate; one ModelError if the
    graph cannot take that size (BodyPix-style models take k * stride + 1)."""
    detail = interpreter.get_input_details()[0]
    shape = [int(d) for d in detail["shape"]]
    if len(shape) != 4 or tuple(shape[1:3]) == tuple(size):
        return  # a wrong rank is model_spec's to refuse
    try:
        interpreter.resize_tensor_input(detail["index"], [shape[0], size[0], size[1], shape[3]])
        interpreter.allocate_tensors()
    except NpDeepLabError as error:
        raise ModelError(f"{model} cannot take a {size[0]}x{size[1]} input: {error}") from None


def model_input(interpreter: Interpreter, image: ImageSource | None = None, seed: int = 0) -> np.ndarray:
    """The model's input for an image, preprocessed as `segment` does, or (no image) random data
    of the right shape and dtype."""
    if image is None:
        detail = interpreter.get_input_details()[0]
        return random_array(np.random.default_rng(seed), tuple(int(d) for d in detail["shape"]), detail["dtype"])
    spec = model_spec(interpreter, entry_for_path(interpreter.model.source))
    return spec.model_input(load_image(image))


def upsampled_map(
    scores: np.ndarray, size: tuple[int, int], reduce: Callable[[np.ndarray], np.ndarray], dtype: Any = np.uint8
) -> np.ndarray:
    """reduce of the scores [h, w, C] bilinearly scaled to size, a block of rows at a time (a block
    [rows, W, C] in, [rows, W, ...] out, stored as dtype)."""
    height, width = size
    y0, y1, dy = bilinear_taps(scores.shape[0], height, False, True)
    x0, x1, dx = bilinear_taps(scores.shape[1], width, False, True)
    dx = dx[None, :, None]
    out: np.ndarray | None = None
    for start in range(0, height, ROW_BLOCK):
        rows = slice(start, min(start + ROW_BLOCK, height))
        weight = dy[rows, None, None]
        blended = scores[y0[rows]] * (1 - weight) + scores[y1[rows]] * weight  # [rows, w, C]
        block = reduce(np.take(blended, x0, axis=1) * (1 - dx) + np.take(blended, x1, axis=1) * dx)
        if out is None:
            out = np.empty((height, *block.shape[1:]), dtype=dtype)
        out[rows] = block
    assert out is not None
    return out


def upsampled_labels(
    scores: np.ndarray, size: tuple[int, int], to_labels: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """to_labels of the scores [h, w, C] bilinearly scaled to size, a block of rows at a time
    (a block [rows, W, C] in, [rows, W] class ids out)."""
    return upsampled_map(scores, size, to_labels, np.uint8)


def upsampled_argmax(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """argmax over classes of the logits bilinearly scaled to size."""
    return upsampled_labels(logits, size, lambda block: np.argmax(block, axis=2))


def nearest_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    rows = nearest_indices(labels.shape[0], size[0], False, True)
    cols = nearest_indices(labels.shape[1], size[1], False, True)
    return labels[rows][:, cols].astype(np.uint8)
