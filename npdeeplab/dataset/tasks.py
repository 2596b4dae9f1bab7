"""The per-image work of `segment` and `evaluate`, as picklable tasks for npdeeplab.dataset.runner.

Expected errors (a bad image, a mask of the wrong size) come back as the exception object, so the
caller decides, in order, whether to stop or go on; anything else is a bug and raises in the worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from npdeeplab.dataset.masks import load_mask
from npdeeplab.dataset.metrics import confusion_matrix
from npdeeplab.dataset.sources import FileBytes, Source, model_file, open_source
from npdeeplab.errors import ImageError, NpDeepLabError
from npdeeplab.segmentation import SegmentationResult, load_segmenter, segment


@dataclass(frozen=True)
class SegmentTask:
    """segment() with the command's options; returns the result without the model's raw outputs
    (the writers need the labels, matte and image only), or the NpDeepLabError it raised."""

    model: str | FileBytes
    backend: str | None = None
    numerics: str | None = None
    max_pixels: int | None = None
    output_name: str | None = None
    output_kind: str | None = None
    input_range: tuple[float, float] | None = None
    input_size: tuple[int, int] | None = None
    threshold: float | None = None

    def setup(self) -> None:
        load_segmenter(model_file(self.model), self.backend, output_name=self.output_name, numerics=self.numerics,
                       **self._reading())

    def __call__(self, image: Source) -> SegmentationResult | NpDeepLabError:
        try:
            result = segment(open_source(image), model_file(self.model), backend=self.backend,
                             max_pixels=self.max_pixels, output_name=self.output_name, threshold=self.threshold,
                             numerics=self.numerics, **self._reading())
        except NpDeepLabError as error:
            return error
        return dataclasses.replace(result, logits=None, outputs={})

    def _reading(self) -> dict:
        return {"output_kind": self.output_kind, "input_range": self.input_range, "input_size": self.input_size}


@dataclass(frozen=True)
class Counts:
    """One image's evaluation: a confusion matrix per model (rows: ground truth, columns: prediction),
    and, for two models, the pixels where they predict the same class."""

    confusions: tuple[np.ndarray, ...]
    agreeing: int
    pixels: int


@dataclass(frozen=True)
class EvaluateTask:
    """Each model on one (image, mask) pair; returns Counts, or the NpDeepLabError raised."""

    models: tuple[str | FileBytes, ...]
    classes: int
    backend: str | None = None
    numerics: str | None = None
    max_pixels: int | None = None
    label_map: tuple[tuple[int, int], ...] | None = None

    def setup(self) -> None:
        for model in self.models:
            load_segmenter(model_file(model), self.backend, numerics=self.numerics)

    def __call__(self, pair: tuple[Source, Source]) -> Counts | NpDeepLabError:
        image, mask = pair
        try:
            truth = load_mask(open_source(mask), self.classes, self.label_map)
            predictions = [segment(open_source(image), model_file(model), backend=self.backend,
                                   max_pixels=self.max_pixels, numerics=self.numerics).labels
                           for model in self.models]
        except NpDeepLabError as error:
            return error
        if predictions[0].shape != truth.shape:
            return ImageError(f"mask {_name(mask)} is {truth.shape[1]}x{truth.shape[0]} but image {_name(image)} "
                              f"is {predictions[0].shape[1]}x{predictions[0].shape[0]}")
        confusions = tuple(confusion_matrix(truth, labels, self.classes) for labels in predictions)
        agreeing = int(np.count_nonzero(predictions[0] == predictions[-1]))
        return Counts(confusions, agreeing, truth.size)


def _name(source: Source) -> str:
    return repr(source if isinstance(source, str) else source.name)
