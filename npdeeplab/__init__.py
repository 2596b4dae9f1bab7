"""npdeeplab: a pure-NumPy reference inference engine for TensorFlow Lite segmentation models."""

from npdeeplab.threads import quiet_waiting_threads

quiet_waiting_threads()  # before NumPy loads OpenBLAS, where we are first

# ruff: noqa: E402

from npdeeplab.errors import ModelError, NpDeepLabError
from npdeeplab.interpreter import Interpreter, OpCall
from npdeeplab.loader import load_model

__version__ = "0.1.0"


def segment(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - a lazy re-export
    """Segment an image; see npdeeplab.segmentation.segment."""
    from npdeeplab.segmentation import segment as _segment

    return _segment(*args, **kwargs)


def compare(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - a lazy re-export
    """Compare npdeeplab with LiteRT op by op; see npdeeplab.comparison.compare_with_litert (and
    compare_models for two graphs)."""
    from npdeeplab.comparison import compare_with_litert

    return compare_with_litert(*args, **kwargs)


__all__ = ["Interpreter", "ModelError", "NpDeepLabError", "OpCall", "load_model", "segment", "compare", "__version__"]
