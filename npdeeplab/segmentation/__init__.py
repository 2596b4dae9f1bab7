"""The segmentation pipeline: images in (images), model run and label maps (pipeline), colours
and overlays (palette)."""

from npdeeplab.segmentation.pipeline import (
    FOREGROUND_LABELS,
    VOC_LABELS,
    ClassArea,
    ModelSpec,
    SegmentationResult,
    labels_at,
    load_segmenter,
    model_input,
    model_spec,
    nearest_labels,
    output_kind,
    segment,
    upsampled_argmax,
    upsampled_labels,
)

__all__ = [
    "FOREGROUND_LABELS", "VOC_LABELS", "ClassArea", "ModelSpec", "SegmentationResult", "labels_at",
    "load_segmenter", "model_input", "model_spec", "nearest_labels", "output_kind", "segment",
    "upsampled_argmax", "upsampled_labels",
]
