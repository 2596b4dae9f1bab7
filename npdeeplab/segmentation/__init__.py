"""The segmentation pipeline: images in (images), how a model is fed and read (spec), the model
run and label maps (pipeline), what comes back (result), person mattes and composites (matte),
colours and overlays (palette), animated GIFs (animation)."""

from npdeeplab.segmentation.pipeline import (
    foreground_at,
    labels_at,
    load_segmenter,
    model_input,
    nearest_labels,
    resize_input,
    segment,
    upsampled_argmax,
    upsampled_labels,
    upsampled_map,
)
from npdeeplab.segmentation.result import ClassArea, SegmentationResult
from npdeeplab.segmentation.spec import (
    DEFAULT_THRESHOLD,
    FOREGROUND_LABELS,
    VOC_LABELS,
    ModelSpec,
    model_spec,
    output_kind,
    output_kind_of,
    select_output,
)

__all__ = [
    "DEFAULT_THRESHOLD", "FOREGROUND_LABELS", "VOC_LABELS", "ClassArea", "ModelSpec", "SegmentationResult",
    "foreground_at", "labels_at", "load_segmenter", "model_input", "model_spec", "nearest_labels", "output_kind",
    "output_kind_of", "resize_input", "segment", "select_output", "upsampled_argmax", "upsampled_labels",
    "upsampled_map",
]
