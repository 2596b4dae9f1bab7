"""Segment an image: image -> model input -> logits -> per-pixel class at the image's own size.

Preprocessing follows the model's registry entry (size, normalisation). The logits are scaled
up to the image with bilinear interpolation (half-pixel centres) before the argmax, which gives
smooth class boundaries; models that output class ids are scaled with nearest neighbour. A model
with one output channel (a person or foreground score, as MediaPipe's selfie segmentation and
BodyPix give) is a binary mask: foreground where its probability is over 0.5, read as a
probability when the graph ends in LOGISTIC and as a logit otherwise (sigmoid(x) > 0.5 is x > 0).
"""

from __future__ import annotations

import base64
import html
import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from npdeeplab.errors import ModelError
from npdeeplab.kernels.resize import bilinear_taps, nearest_indices
from npdeeplab.runtime.inputs import random_array
from npdeeplab.runtime.interpreter import Interpreter
from npdeeplab.segmentation import palette
from npdeeplab.segmentation.images import ImageSource, load_image, to_model_input
from npdeeplab.zoo import DEFAULT_MODEL, entry_for_path, get_entry, registry, resolve_model

VOC_LABELS = registry()[DEFAULT_MODEL].labels
ROW_BLOCK = 64  # rows of the upsampled logits held at once


@dataclass(frozen=True)
class ModelSpec:
    """How to feed a segmentation model and read its output."""

    input_size: tuple[int, int]
    input_dtype: np.dtype
    mean: float
    std: float
    output: str  # "logits" (argmax), "labels" (class ids), "probability" or "logit" (one foreground channel)
    labels: tuple[str, ...]
    input_quantization: tuple[float, int] | None = None  # integer inputs: None feeds the pixels as they are
    output_quantization: tuple[float, int] | None = None  # quantized scores, dequantized before they are read

    def model_input(self, picture: Image.Image) -> np.ndarray:
        return to_model_input(picture, self.input_size, self.input_dtype, self.mean, self.std, self.input_quantization)

    def real_output(self, output: np.ndarray) -> np.ndarray:
        """The model's scores as real numbers (quantized logits or probabilities dequantized)."""
        if self.output_quantization is None:
            return output
        scale, zero_point = self.output_quantization
        return (np.float32(scale) * (output.astype(np.float32) - np.float32(zero_point))).astype(np.float32)

    @property
    def reading(self) -> str:
        """How the output becomes class ids, in words."""
        return {
            "logits": f"argmax over {len(self.labels)} classes",
            "labels": "class ids",
            "probability": "one-channel output read as a probability: foreground where > 0.5",
            "logit": "one-channel output read as a logit: foreground where sigmoid > 0.5",
        }[self.output]


@dataclass(frozen=True)
class ClassArea:
    class_id: int
    name: str
    pixels: int
    share: float


FOREGROUND_LABELS = ("background", "foreground")


@dataclass(repr=False)
class SegmentationResult:
    labels: np.ndarray  # H x W uint8 class ids at the image's size
    logits: np.ndarray | None  # h x w x C float32 at the model's resolution (None for label models)
    class_names: tuple[str, ...]
    image: Image.Image
    model: str
    reading: str = "argmax"  # how the model's output became labels (ModelSpec.reading)

    def __repr__(self) -> str:
        classes = ", ".join(f"{a.name} {100 * a.share:.1f}%" for a in self.areas())
        return f"SegmentationResult(model={self.model!r}, size={self.image.width}x{self.image.height}, {classes})"

    def areas(self) -> list[ClassArea]:
        """Each class present, largest first."""
        counts = np.bincount(self.labels.reshape(-1), minlength=len(self.class_names))
        total = int(self.labels.size)
        rows = [
            ClassArea(c, self._name(c), int(n), float(n / total)) for c, n in enumerate(counts) if n > 0
        ]
        return sorted(rows, key=lambda row: (-row.pixels, row.class_id))

    def overlay(self, alpha: float = 0.5, legend: bool = True) -> Image.Image:
        return palette.overlay(self.image, self.labels, alpha, self.class_names, legend=legend)

    def mask_image(self) -> Image.Image:
        return palette.mask_image(self.labels)

    def save_mask(self, path: str | os.PathLike) -> Path:
        return palette.save_mask_png(self.labels, path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "width": self.image.width,
            "height": self.image.height,
            "reading": self.reading,
            "classes": [
                {"id": a.class_id, "name": a.name, "pixels": a.pixels, "share": round(a.share, 6)}
                for a in self.areas()
            ],
        }

    def _repr_html_(self) -> str:
        buffer = io.BytesIO()
        picture = self.overlay()
        picture.thumbnail((640, 640))
        picture.save(buffer, format="PNG")
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        rows = "".join(
            f"<tr><td>{a.class_id}</td><td>{html.escape(a.name)}</td><td style='text-align:right'>"
            f"{100 * a.share:.1f}%</td></tr>"
            for a in self.areas()
        )
        return (
            f"<div style='display:flex;gap:16px;align-items:flex-start'>"
            f"<img src='data:image/png;base64,{encoded}' alt='segmentation overlay'/>"
            f"<table><thead><tr><th>id</th><th>class</th><th>area</th></tr></thead><tbody>{rows}</tbody></table>"
            f"</div>"
        )

    def _name(self, class_id: int) -> str:
        return self.class_names[class_id] if class_id < len(self.class_names) else f"class {class_id}"


_interpreters: dict[tuple[str, str | None], tuple[Interpreter, ModelSpec]] = {}
_loading = threading.Lock()


def segment(
    image: ImageSource,
    model: str | os.PathLike = DEFAULT_MODEL,
    *,
    backend: str | None = None,
    interpreter: Interpreter | None = None,
    max_pixels: int | None = None,
) -> SegmentationResult:
    """Segment one image (a path, a PIL image or an HxWx3 uint8 array) with a model name or path.

    Safe to call from several threads: a shared interpreter runs one image at a time.
    """
    picture = load_image(image, max_pixels)
    if interpreter is None:
        interpreter, spec = load_segmenter(model, backend)
    else:
        spec = model_spec(interpreter, None)
    batch = spec.model_input(picture)
    with interpreter.lock:  # set, invoke and get as one step, or another thread's image could slip in
        if not interpreter.allocated:
            interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
        interpreter.invoke()
        output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    if spec.output != "labels":
        output = spec.real_output(output)
    return SegmentationResult(
        labels_at(output, spec, (picture.height, picture.width)),
        None if spec.output == "labels" else output,
        spec.labels,
        picture,
        str(model),
        spec.reading,
    )


def labels_at(output: np.ndarray, spec: ModelSpec, size: tuple[int, int]) -> np.ndarray:
    """The model's output (one image, at the model's resolution) as class ids at size."""
    if spec.output == "labels":
        return nearest_labels(output, size)
    if spec.output == "probability":
        return upsampled_labels(output, size, lambda block: block[..., 0] > 0.5)
    if spec.output == "logit":
        return upsampled_labels(output, size, lambda block: block[..., 0] > 0)
    return upsampled_argmax(output, size)


def load_segmenter(model: str | os.PathLike, backend: str | None = None) -> tuple[Interpreter, ModelSpec]:
    """An interpreter for the model, loaded once per process and backend."""
    path = resolve_model(model)
    key = (str(path), backend)
    with _loading:  # two threads asking at once share one interpreter
        if key not in _interpreters:
            interpreter = Interpreter(model_path=path, backend=backend)
            interpreter.allocate_tensors()
            entry = entry_for_path(path) if Path(str(model)).suffix else get_entry(str(model))
            _interpreters[key] = (interpreter, model_spec(interpreter, entry))
    return _interpreters[key]


def model_spec(interpreter: Interpreter, entry: Any) -> ModelSpec:
    """From the registry entry when there is one, else from the model's own input and output."""
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    shape, dtype = tuple(int(d) for d in inputs[0]["shape"]), np.dtype(inputs[0]["dtype"])
    if len(inputs) != 1 or len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise ModelError(f"a segmentation model takes one [1, H, W, 3] image; this one takes {list(shape)}")
    out_shape = tuple(int(d) for d in outputs[0]["shape"])
    if len(out_shape) not in (3, 4) or out_shape[0] != 1:
        raise ModelError(
            f"a segmentation model outputs [1, H, W, classes] or [1, H, W]; this one gives {list(out_shape)}"
        )
    output = output_kind(interpreter, out_shape)
    output_quantization = _quantization(outputs[0]) if output != "labels" else None
    if entry is not None:
        input_quantization = None if entry.raw_pixels else _quantization(inputs[0])
        return ModelSpec(entry.input_size, dtype, entry.mean, entry.std, entry.output, entry.labels,
                         input_quantization, output_quantization)
    if output in ("probability", "logit"):
        labels = FOREGROUND_LABELS
    else:
        classes = out_shape[3] if output == "logits" else len(VOC_LABELS)
        labels = VOC_LABELS if classes == len(VOC_LABELS) else tuple(f"class_{i}" for i in range(classes))
    input_quantization = _quantization(inputs[0])
    mean, std = (127.5, 127.5) if dtype.kind == "f" or input_quantization else (0.0, 1.0)
    return ModelSpec((shape[1], shape[2]), dtype, mean, std, output, labels, input_quantization, output_quantization)


def _quantization(detail: dict) -> tuple[float, int] | None:
    """(scale, zero point) of an integer tensor that is quantized, from LiteRT-style details."""
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]).kind not in "iu" or not scale:
        return None
    return float(scale), int(zero_point)


def output_kind(interpreter: Interpreter, shape: tuple[int, ...]) -> str:
    """"labels" for [1, H, W], "logits" for [1, H, W, C > 1]; one channel is a foreground
    "probability" when the last op is LOGISTIC, else a foreground "logit"."""
    if len(shape) == 3:
        return "labels"
    if shape[3] > 1:
        return "logits"
    output = interpreter.get_output_details()[0]["index"]
    last = next((step.op for step in reversed(interpreter.ops) if output in step.op.outputs), None)
    return "probability" if last is not None and last.kind == "LOGISTIC" else "logit"


def model_input(interpreter: Interpreter, image: ImageSource | None = None, seed: int = 0) -> np.ndarray:
    """The model's input for an image, preprocessed as `segment` does, or (no image) random data
    of the right shape and dtype."""
    if image is None:
        detail = interpreter.get_input_details()[0]
        return random_array(np.random.default_rng(seed), tuple(int(d) for d in detail["shape"]), detail["dtype"])
    spec = model_spec(interpreter, entry_for_path(interpreter.model.source))
    return spec.model_input(load_image(image))


def upsampled_labels(
    scores: np.ndarray, size: tuple[int, int], to_labels: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """to_labels of the scores [h, w, C] bilinearly scaled to size, a block of rows at a time
    (a block [rows, W, C] in, [rows, W] class ids out)."""
    height, width = size
    y0, y1, dy = bilinear_taps(scores.shape[0], height, False, True)
    x0, x1, dx = bilinear_taps(scores.shape[1], width, False, True)
    dx = dx[None, :, None]
    labels = np.empty(size, dtype=np.uint8)
    for start in range(0, height, ROW_BLOCK):
        rows = slice(start, min(start + ROW_BLOCK, height))
        weight = dy[rows, None, None]
        blended = scores[y0[rows]] * (1 - weight) + scores[y1[rows]] * weight  # [rows, w, C]
        block = np.take(blended, x0, axis=1) * (1 - dx) + np.take(blended, x1, axis=1) * dx
        labels[rows] = to_labels(block)
    return labels


def upsampled_argmax(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """argmax over classes of the logits bilinearly scaled to size."""
    return upsampled_labels(logits, size, lambda block: np.argmax(block, axis=2))


def nearest_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    rows = nearest_indices(labels.shape[0], size[0], False, True)
    cols = nearest_indices(labels.shape[1], size[1], False, True)
    return labels[rows][:, cols].astype(np.uint8)
