"""How to feed a segmentation model and read its output (a ModelSpec), from the caller's options,
the model's registry entry, or the graph itself, in that order.

Which output is read: the one named, else the registry's output_name or output_index, else the first
shaped [1, H, W, C] or [1, H, W]. How it is read (zoo.OUTPUT_KINDS): [1, H, W] are class ids, one
channel a foreground probability when the op computing it is LOGISTIC and a foreground logit
otherwise, two channels background/person logits (probabilities after a SOFTMAX), more channels
class logits. The input: pixels 0..255 mapped linearly onto a range ([-1, 1] unless the entry or the
caller says otherwise), quantized with the input's scale and zero point for quantized inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from npdeeplab.errors import InputError, ModelError
from npdeeplab.runtime.interpreter import Interpreter
from npdeeplab.segmentation.images import to_model_input
from npdeeplab.zoo import DEFAULT_MODEL, FOREGROUND_KINDS, OUTPUT_KINDS, ModelEntry, range_to_mean_std, registry

VOC_LABELS = registry()[DEFAULT_MODEL].labels
FOREGROUND_LABELS = ("background", "foreground")
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ModelSpec:
    """How to feed a segmentation model and read its output."""

    input_size: tuple[int, int]
    input_dtype: np.dtype
    mean: float
    std: float
    output: str  # one of zoo.OUTPUT_KINDS
    labels: tuple[str, ...]
    input_quantization: tuple[float, int] | None = None  # integer inputs: None feeds the pixels as they are
    output_quantization: tuple[float, int] | None = None  # quantized scores, dequantized before they are read
    output_tensor: int | None = None  # tensor index of the output read (None: the model's first output)
    softmaxed: bool = False  # "two_class" output after a SOFTMAX: channel 1 is already the probability
    origin: str = ""  # where the reading came from, in words
    input_text: str = ""  # how pixels become the model's input, in words

    def model_input(self, picture: Image.Image) -> np.ndarray:
        return to_model_input(picture, self.input_size, self.input_dtype, self.mean, self.std, self.input_quantization)

    def real_output(self, output: np.ndarray) -> np.ndarray:
        """The model's scores as real numbers (quantized logits or probabilities dequantized)."""
        if self.output_quantization is None:
            return output
        scale, zero_point = self.output_quantization
        return (np.float32(scale) * (output.astype(np.float32) - np.float32(zero_point))).astype(np.float32)

    @property
    def foreground(self) -> bool:
        """True for person/foreground models (a matte), False for class models."""
        return self.output in FOREGROUND_KINDS

    @property
    def reading(self) -> str:
        return self.describe()

    def describe(self, threshold: float = DEFAULT_THRESHOLD) -> str:
        """How the output becomes class ids (and a matte), in words, with where that came from."""
        person = self.labels[1] if len(self.labels) > 1 else "foreground"
        text = {
            "logits": f"argmax over {len(self.labels)} classes",
            "labels": "class ids",
            "probability": f"one-channel output read as a probability: {person} where > {threshold:g}",
            "logit": f"one-channel output read as a logit: {person} where sigmoid > {threshold:g}",
            "two_class": (
                f"two-channel output read as background/{person} probabilities: {person} where > {threshold:g}"
                if self.softmaxed else
                f"two-channel output read as background/{person} logits: {person} where softmax > {threshold:g}"
            ),
        }[self.output]
        return f"{text} ({self.origin})" if self.origin else text



def model_spec(
    interpreter: Interpreter,
    entry: ModelEntry | None,
    *,
    output_kind: str | None = None,
    input_range: tuple[float, float] | None = None,
    output_name: str | None = None,
) -> ModelSpec:
    """From the options given, else the registry entry when there is one, else the model's own input
    and outputs."""
    inputs = interpreter.get_input_details()
    shape, dtype = tuple(int(d) for d in inputs[0]["shape"]), np.dtype(inputs[0]["dtype"])
    if len(inputs) != 1 or len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise ModelError(f"a segmentation model takes one [1, H, W, 3] image; this one takes {list(shape)}")
    detail = select_output(interpreter, entry, output_name)
    out_shape = tuple(int(d) for d in detail["shape"])
    kind, origin = _kind(interpreter, detail, entry, output_kind)
    _check_output(kind, out_shape, detail["name"])
    mean, std, input_quantization, input_text = _input_scaling(inputs[0], entry, input_range)
    if entry is not None:
        labels = entry.labels
    elif kind in FOREGROUND_KINDS:
        labels = FOREGROUND_LABELS
    else:
        classes = out_shape[3] if kind == "logits" else len(VOC_LABELS)
        labels = VOC_LABELS if classes == len(VOC_LABELS) else tuple(f"class_{i}" for i in range(classes))
    return ModelSpec(
        (shape[1], shape[2]), dtype, mean, std, kind, labels, input_quantization,
        _quantization(detail) if kind != "labels" else None,
        output_tensor=int(detail["index"]), softmaxed=_last_op(interpreter, int(detail["index"])) == "SOFTMAX",
        origin=origin, input_text=input_text,
    )


def _fits(shape: tuple[int, ...]) -> bool:
    """[1, H, W, C] or [1, H, W], with H and W over 1: a map, not a vector."""
    return len(shape) in (3, 4) and shape[0] == 1 and shape[1] > 1 and shape[2] > 1


def _listing(outputs: list[dict]) -> str:
    return ", ".join(f"{d['name']!r} {[int(v) for v in d['shape']]}" for d in outputs)


def select_output(interpreter: Interpreter, entry: ModelEntry | None, output_name: str | None = None) -> dict:
    """The output segment reads: output_name, else the entry's output_name or output_index, else the
    first output shaped [1, H, W, C] or [1, H, W]."""
    outputs = interpreter.get_output_details()
    name = output_name if output_name is not None else (entry.output_name if entry is not None else None)
    if name is not None:
        match = [d for d in outputs if d["name"] == name]
        if not match:
            raise ModelError(f"the model has no output named {name!r}; its outputs: {_listing(outputs)}")
        return match[0]
    if entry is not None and entry.output_index is not None:
        if not 0 <= entry.output_index < len(outputs):
            raise ModelError(f"the registry reads output {entry.output_index}; the model has {len(outputs)}")
        return outputs[entry.output_index]
    for detail in outputs:
        if _fits(tuple(int(d) for d in detail["shape"])):
            return detail
    raise ModelError(
        f"a segmentation model outputs [1, H, W, classes] or [1, H, W]; this one gives {_listing(outputs)}"
    )


def _kind(interpreter: Interpreter, detail: dict, entry: ModelEntry | None, output_kind: str | None) -> tuple[str, str]:
    """(output kind, where it came from)."""
    if output_kind is not None:
        if output_kind not in OUTPUT_KINDS:
            raise InputError(f"unknown output kind {output_kind!r}; the kinds are {', '.join(OUTPUT_KINDS)}")
        return output_kind, "output kind given"
    if entry is not None:
        return entry.output, "from the registry entry"
    shape = tuple(int(d) for d in detail["shape"])
    kind = output_kind_of(interpreter, shape, int(detail["index"]))
    last = _last_op(interpreter, int(detail["index"]))
    why = {
        "labels": "inferred: a [1, H, W] output",
        "logits": f"inferred: {shape[-1]} channels",
        "probability": "inferred: one channel, the graph ends in LOGISTIC",
        "logit": f"inferred: one channel, the graph ends in {last or 'no op'}, not LOGISTIC",
        "two_class": "inferred: two channels" + (", after SOFTMAX" if last == "SOFTMAX" else ""),
    }[kind]
    return kind, why


def _check_output(kind: str, shape: tuple[int, ...], name: str) -> None:
    """Refuse an output the kind cannot read."""
    channels = shape[3] if len(shape) == 4 else None
    fits = len(shape) in (3, 4) and shape[0] == 1 and {
        "logits": channels is not None and channels >= 2,
        "labels": channels in (None, 1),
        "probability": channels in (None, 1),
        "logit": channels in (None, 1),
        "two_class": channels == 2,
    }[kind]
    if not fits:
        need = {"logits": "[1, H, W, C > 1]", "labels": "[1, H, W]", "two_class": "[1, H, W, 2]"}
        need = need.get(kind, "[1, H, W, 1]")
        raise ModelError(f"output {name!r} is {list(shape)}; reading it as {kind} needs {need}")


def _input_scaling(
    detail: dict, entry: ModelEntry | None, input_range: tuple[float, float] | None
) -> tuple[float, float, tuple[float, int] | None, str]:
    """(mean, std, input quantization, in words) for the image input."""
    dtype = np.dtype(detail["dtype"])
    quantization = _quantization(detail)
    if input_range is not None:
        low, high = _range(input_range)
        if dtype.kind != "f" and quantization is None and (low, high) != (0.0, 255.0):
            raise InputError(
                f"the input is {dtype.name} without quantization: it takes the pixels 0..255 as they are, "
                f"not a range of {low:g}..{high:g}"
            )
        mean, std = range_to_mean_std(low, high)
        return mean, std, quantization, _scaling_text(low, high, dtype, quantization, "input range given")
    if entry is not None:
        if entry.raw_pixels or (dtype.kind != "f" and quantization is None):
            return entry.mean, entry.std, None, "input: the pixels 0..255 as they are (from the registry entry)"
        low, high = (0 - entry.mean) / entry.std, (255 - entry.mean) / entry.std
        text = _scaling_text(low, high, dtype, quantization, "from the registry entry")
        return entry.mean, entry.std, quantization, text
    if dtype.kind == "f" or quantization:
        how = "the default for float inputs" if dtype.kind == "f" else "the default"
        return 127.5, 127.5, quantization, _scaling_text(-1, 1, dtype, quantization, f"{how}; --input-range sets it")
    return 0.0, 1.0, None, "input: the pixels 0..255 as they are (an integer input without quantization)"


def _scaling_text(low: float, high: float, dtype: np.dtype, quantization: tuple[float, int] | None, why: str) -> str:
    quantized = ""
    if quantization:
        quantized = f", quantized to {dtype.name} (scale {quantization[0]:g}, zero point {quantization[1]})"
    return f"input: pixels scaled to [{low:g}, {high:g}]{quantized} ({why})"


def _range(value: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"an input range is (low, high), two numbers; got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InputError(f"an input range needs finite low < high; got {low:g}, {high:g}")
    return low, high


def _quantization(detail: dict) -> tuple[float, int] | None:
    """(scale, zero point) of an integer tensor that is quantized, from LiteRT-style details."""
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]).kind not in "iu" or not scale:
        return None
    return float(scale), int(zero_point)


def _last_op(interpreter: Interpreter, tensor: int) -> str | None:
    """The kind of the op that computes the tensor (None for a graph input or a constant)."""
    last = next((step.op for step in reversed(interpreter.ops) if tensor in step.op.outputs), None)
    return None if last is None else last.kind


def output_kind_of(interpreter: Interpreter, shape: tuple[int, ...], tensor: int | None = None) -> str:
    """The kind the graph suggests for an output (tensor index; default the first output):
    "labels" for [1, H, W], "two_class" for two channels, "logits" for more; one channel is a
    foreground "probability" when the op that computes it is LOGISTIC, else a foreground "logit"."""
    if len(shape) == 3:
        return "labels"
    if shape[3] == 2:
        return "two_class"
    if shape[3] > 1:
        return "logits"
    tensor = interpreter.get_output_details()[0]["index"] if tensor is None else tensor
    return "probability" if _last_op(interpreter, tensor) == "LOGISTIC" else "logit"


output_kind = output_kind_of  # the name it had first


