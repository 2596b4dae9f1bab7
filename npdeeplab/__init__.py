"""npdeeplab: a pure-NumPy reference inference engine for TensorFlow Lite segmentation models."""

from npdeeplab.runtime.threads import quiet_waiting_threads

quiet_waiting_threads()  # before NumPy loads OpenBLAS, where we are first

# ruff: noqa: E402

import os
from typing import TYPE_CHECKING, Any

from npdeeplab.errors import ModelError, NpDeepLabError
from npdeeplab.model.loader import load_model
from npdeeplab.ops.base import OpContext, PreparedOp
from npdeeplab.ops.custom import CustomPrepared, register_custom_op, unregister_custom_op
from npdeeplab.runtime.interpreter import Interpreter, OpCall

if TYPE_CHECKING:
    from npdeeplab.segmentation import SegmentationResult
    from npdeeplab.tools.comparison import Comparison

__version__ = "0.1.0"


# segment() and compare() import their modules on first use, so that `import npdeeplab` stays
# light (no Pillow, no progress bars) for people who only want the Interpreter.


def segment(
    image: Any,
    model: str | os.PathLike = "deeplabv3_257_mv_gpu",
    *,
    backend: str | None = None,
    interpreter: Interpreter | None = None,
    numerics: str | None = None,
    **options: Any,
) -> "SegmentationResult":
    """Segment an image (path, PIL image or HxWx3 uint8 array); see npdeeplab.segmentation.segment
    for the options (output_kind, input_range, input_size, output_name, threshold, max_pixels);
    numerics: one of npdeeplab.runtime.numerics.NUMERICS (default "reference")."""
    from npdeeplab.segmentation import segment as _segment

    return _segment(image, model, backend=backend, interpreter=interpreter, numerics=numerics, **options)


def compare(model: Any, inputs: Any, **options: Any) -> "Comparison":
    """npdeeplab against LiteRT op by op; see npdeeplab.tools.comparison.compare_with_litert (and
    compare_models for two graphs)."""
    from npdeeplab.tools.comparison import compare_with_litert

    return compare_with_litert(model, inputs, **options)


__all__ = [
    "CustomPrepared", "Interpreter", "ModelError", "NpDeepLabError", "OpCall", "OpContext", "PreparedOp", "compare",
    "load_model", "register_custom_op", "segment", "unregister_custom_op", "__version__",
]
