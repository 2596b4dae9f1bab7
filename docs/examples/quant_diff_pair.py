"""Write the float model and int8 twin that `npdeeplab quant-diff` is shown on in the README.

    python docs/examples/quant_diff_pair.py OUT_DIR

OUT_DIR/float.tflite is a small builder-made float model (CONV_2D, DEPTHWISE_CONV_2D, ADD,
RELU6); OUT_DIR/quant_coarse.tflite its converter-style int8 twin (tests/post_training.py: the
same weights, per channel, calibrated activations) with one layer's output scale made 16x
coarser, the layer quant-diff must rank first (tests/test_quant_diff.py holds it).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from test_quant_diff import COARSE_OP, int8_twin, small_float_model  # noqa: E402

from npdeeplab.model.writer import save_model  # noqa: E402

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    model = small_float_model()
    save_model(model, out / "float.tflite")
    save_model(int8_twin(model, coarse_op=COARSE_OP), out / "quant_coarse.tflite")
    print(f"wrote {out / 'float.tflite'} and {out / 'quant_coarse.tflite'} (op {COARSE_OP}'s scale 16x coarser)")
