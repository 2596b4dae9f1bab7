"""How far npdeeplab is from LiteRT on the seed model, both backends: whole-model logits on the shared
images and random inputs, and every op fed LiteRT's own inputs.

    NPDEEPLAB_MODELS=../shared/models NPDEEPLAB_IMAGES=../shared/images python benchmarks/accuracy.py
"""

import os
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from PIL import Image

import npdeeplab  # noqa: F401  (first: thread policy)
from npdeeplab.runtime.backends import kernel_table, numba_available
from npdeeplab.zoo import resolve_model

MODEL = str(resolve_model("deeplabv3_257_mv_gpu"))
IMAGES = Path(os.environ.get("NPDEEPLAB_IMAGES", "../shared/images"))
BACKENDS = ["numpy"] + (["numba"] if numba_available() else [])


def preprocess(path: Path) -> np.ndarray:
    image = Image.open(path).convert("RGB").resize((257, 257), Image.Resampling.BILINEAR)
    return ((np.asarray(image, np.float32) - 127.5) / 127.5)[None]


def run(interpreter, x: np.ndarray) -> np.ndarray:
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def main() -> None:
    inputs = {p.name: preprocess(p) for p in sorted(IMAGES.glob("*")) if "mask" not in p.name}
    inputs.update({f"random{s}": np.random.default_rng(s).uniform(-1, 1, (1, 257, 257, 3)).astype(np.float32)
                   for s in range(3)})
    optimised, reference = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, OpResolverType.BUILTIN_REF
    references = {
        "no delegate": Interpreter(model_path=MODEL, experimental_op_resolver_type=optimised),
        "reference kernels": Interpreter(model_path=MODEL, experimental_op_resolver_type=reference),
    }
    for backend in BACKENDS:
        ours = npdeeplab.Interpreter(model_path=MODEL, backend=backend)
        for name, reference in references.items():
            worst, agreement = 0.0, 1.0
            for x in inputs.values():
                a, b = run(ours, x), run(reference, x)
                worst = max(worst, float(np.abs(a - b).max()))
                agreement = min(agreement, float((a.argmax(-1) == b.argmax(-1)).mean()))
            print(f"{backend:>5} vs LiteRT ({name}): max |logit difference| {worst:.2e}, "
                  f"worst argmax agreement {100 * agreement:.4f}% over {len(inputs)} inputs")
    litert = Interpreter(
        model_path=MODEL, experimental_op_resolver_type=optimised, experimental_preserve_all_tensors=True
    )
    run(litert, next(iter(inputs.values())))
    for backend in BACKENDS:
        ours, kernels = npdeeplab.Interpreter(model_path=MODEL, backend=backend), kernel_table(backend)
        worst, where, identical = 0.0, "", 0
        for step in ours.ops:
            got = kernels[step.kernel](step.params, *[None if i == -1 else litert.get_tensor(i) for i in step.inputs])
            expected = litert.get_tensor(step.op.outputs[0])
            error = float(np.abs(got - expected).max() / np.abs(expected).max())
            identical += bool(np.array_equal(got, expected))
            if error > worst:
                worst, where = error, f"op {step.op.index} {step.op.kind}"
        print(f"{backend:>5}, each op fed LiteRT's inputs: worst max|error|/max|output| {worst:.2e} ({where}); "
              f"{identical} of {len(ours.ops)} ops bit-identical")


if __name__ == "__main__":
    main()
