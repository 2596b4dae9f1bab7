"""The segmentation pipeline: images in (images), model run and label maps (pipeline), colours
and overlays (palette)."""

from npdeeplab.segmentation.pipeline import (
    VOC_LABELS,
    ClassArea,
    ModelSpec,
    SegmentationResult,
    load_segmenter,
    model_input,
    model_spec,
    nearest_labels,
    segment,
    upsampled_argmax,
)

__all__ = [
    "VOC_LABELS", "ClassArea", "ModelSpec", "SegmentationResult", "load_segmenter", "model_input", "model_spec",
    "nearest_labels", "segment", "upsampled_argmax",
]
