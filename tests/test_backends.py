"""The Numba kernels equal the NumPy kernels, and the package works where Numba does not import."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import shared_file

from npdeeplab.kernels.activation import SoftmaxParams
from npdeeplab.kernels.conv import ConvParams
from npdeeplab.kernels.elementwise import BinaryParams
from npdeeplab.kernels.pool import PoolParams
from npdeeplab.kernels.reduce import ArgParams, ReduceParams
from npdeeplab.kernels.resize import ResizeParams
from npdeeplab.kernels.windows import Window
from npdeeplab.runtime.backends import kernel_table, numba_available, resolve_backend

IN_CI = os.environ.get("CI") == "true"
RNG = np.random.default_rng(1234)

if not numba_available():
    if IN_CI:
        pytest.fail("Numba does not import in CI; the Numba backend must be tested", pytrace=False)
    pytest.skip("Numba is not installed", allow_module_level=True)

NUMPY = kernel_table("numpy")
NUMBA = kernel_table("numba")


def same(name: str, params: object, *inputs: np.ndarray | None, rtol: float = 2e-6) -> None:
    expected = NUMPY[name](params, *inputs)
    got = NUMBA[name](params, *inputs)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(got, expected, rtol=0, atol=rtol * scale)


def window(size: int, k: int, stride: int, dilation: int, padding: str) -> Window:
    from npdeeplab.ops.conv import output_size_and_padding

    out, pad = output_size_and_padding(size, k, stride, dilation, padding)
    return Window(k, k, stride, stride, dilation, dilation, pad, pad, out, out)


def floats(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


CONV_GRID = [
    (k, stride, dilation, padding, act)
    for k, stride, dilation, padding, act in itertools.product(
        [1, 3, 5], [1, 2, 3], [1, 2, 4], ["SAME", "VALID"], [(0.0, 6.0), (-3e38, 3e38)]
    )
    if padding == "SAME" or (k - 1) * dilation + 1 <= 9  # a VALID window must fit the 9x9 input
]


@pytest.mark.parametrize("k, stride, dilation, padding, act", CONV_GRID)
def test_conv2d(k, stride, dilation, padding, act):
    size = 11
    params = ConvParams(window(size, k, stride, dilation, padding), *act)
    same("conv2d", params, floats(2, size, size, 5), floats(7, k, k, 5), floats(7))
    same("conv2d", params, floats(1, size, size, 3), floats(4, k, k, 3), None)


@pytest.mark.parametrize("k, stride, dilation, padding, act", CONV_GRID)
@pytest.mark.parametrize("multiplier", [1, 3])
def test_depthwise_conv2d(k, stride, dilation, padding, act, multiplier):
    size = 9
    params = ConvParams(window(size, k, stride, dilation, padding), *act)
    same("depthwise_conv2d", params, floats(2, size, size, 4), floats(1, k, k, 4 * multiplier), floats(4 * multiplier))


@pytest.mark.parametrize("k, stride, padding", list(itertools.product([1, 2, 3, 5], [1, 2, 3], ["SAME", "VALID"])))
@pytest.mark.parametrize("kind", ["average_pool2d", "max_pool2d"])
def test_pools(k, stride, padding, kind):
    params = PoolParams(window(10, k, stride, 1, padding), -1.0, 1.0)
    same(kind, params, floats(2, 10, 10, 6))


def test_global_average_pool():
    same("average_pool2d", PoolParams(window(9, 9, 9, 1, "VALID"), -3e38, 3e38), floats(1, 9, 9, 16))


@pytest.mark.parametrize(
    "size_in, size_out, align, half", [(33, 257, True, False), (5, 3, False, False), (1, 4, False, True),
                                       (8, 17, False, True), (6, 6, True, False), (4, 1, True, False)]
)
@pytest.mark.parametrize("kind", ["resize_bilinear", "resize_nearest_neighbor"])
def test_resizes(size_in, size_out, align, half, kind):
    same(kind, ResizeParams(size_out, size_out + 1, align, half), floats(2, size_in, size_in + 2, 3))


@pytest.mark.parametrize("kind", ["add", "sub", "mul"])
@pytest.mark.parametrize("shapes", [((2, 5, 5, 3), (2, 5, 5, 3)), ((2, 5, 5, 3), (3,)), ((4, 1), (1, 6))])
def test_binary(kind, shapes):
    same(kind, BinaryParams(-1.0, 1.0), floats(*shapes[0]), floats(*shapes[1]))


@pytest.mark.parametrize("kind", ["relu", "relu6", "relu_n1_to_1", "tanh", "logistic"])
def test_unary(kind):
    same(kind, None, floats(2, 7, 7, 3) * 8)


def test_softmax():
    same("softmax", SoftmaxParams(0.7), floats(3, 5, 21))


@pytest.mark.parametrize("axes, keep", [((1, 2), True), ((1, 2), False), ((3,), False), ((0, 3), True)])
def test_mean(axes, keep):
    same("mean", ReduceParams(axes, keep), floats(2, 6, 7, 5))


@pytest.mark.parametrize("kind", ["arg_max", "arg_min"])
@pytest.mark.parametrize("axis", [1, 3])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_arg(kind, axis, dtype):
    x = np.round(floats(2, 5, 6, 21))  # rounding makes ties, which must go to the first index
    same(kind, ArgParams(axis, np.dtype(dtype)), x)


def test_auto_backend_is_numba_here():
    assert resolve_backend("auto") == "numba"
    assert resolve_backend("numpy") == "numpy"
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("cuda")


BLOCK_NUMBA = textwrap.dedent(
    """
    import sys, importlib.abc

    class BlockNumba(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "numba" or name.startswith("numba."):
                raise ImportError("numba is blocked for this test")
            return None

    sys.meta_path.insert(0, BlockNumba())
    """
)


def test_everything_works_without_numba(image_path):
    """Where Numba has no wheel: the package imports, picks NumPy, and segments an image."""
    script = BLOCK_NUMBA + textwrap.dedent(
        """
        import numpy as np
        import npdeeplab
        from npdeeplab.runtime.backends import numba_available, resolve_backend
        assert not numba_available()
        assert resolve_backend("auto") == "numpy"
        try:
            resolve_backend("numba")
        except ValueError as error:
            assert "does not import" in str(error)
        else:
            raise AssertionError("asking for numba without numba must fail")
        import sys
        model, image = sys.argv[1], sys.argv[2]
        it = npdeeplab.Interpreter(model_path=model)
        assert it.backend == "numpy"
        result = npdeeplab.segment(image, model)
        assert result.labels.shape == (300, 451), result.labels.shape
        assert result.areas()[0].name == "cat", result.areas()
        print("ok", "numba" in sys.modules)
        """
    )
    model = shared_file("models", "deeplabv3_257_mv_gpu.tflite")
    command = [sys.executable, "-c", script, str(model), str(image_path("chelsea.png"))]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok False"



COMPILE_ONE_KERNEL = textwrap.dedent(
    """
    import sys
    import numpy as np
    import npdeeplab
    from npdeeplab.kernels import conv as reference
    from npdeeplab.kernels.conv import ConvParams
    from npdeeplab.kernels.fast import conv
    from npdeeplab.kernels.windows import Window

    assert npdeeplab.__file__.startswith(sys.argv[1]), npdeeplab.__file__
    x = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3)
    w = np.ones((1, 3, 3, 3), dtype=np.float32)
    params = ConvParams(Window(3, 3, 1, 1, 1, 1, 1, 1, 5, 5), 0.0, 1000.0)
    assert np.array_equal(conv.depthwise_conv2d(params, x, w, None), reference.depthwise_conv2d(params, x, w, None))
    print(conv._depthwise._cache._cache_file._index_path)
    """
)


def test_kernels_cache_in_the_user_cache_when_the_package_is_read_only():
    """A system-wide install: kernels still compile once, into the user's cache directory."""
    import shutil
    import stat
    import tempfile

    import npdeeplab
    import npdeeplab.kernels

    as_nobody: list[str] = []
    if os.geteuid() == 0:  # root writes through read-only permissions: run as an ordinary user
        if shutil.which("setpriv") is None:
            if IN_CI:
                pytest.fail("setpriv (util-linux) is needed to test a read-only install as root")
            pytest.skip("running as root without setpriv")
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    with tempfile.TemporaryDirectory() as scratch:  # under /tmp: reachable by that other user
        root = os.path.realpath(scratch)
        os.chmod(root, 0o755)
        site, home = os.path.join(root, "site"), os.path.join(root, "home")
        package = os.path.join(site, "npdeeplab")
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(os.path.dirname(npdeeplab.__file__), package, ignore=ignore)
        shutil.copytree(os.path.dirname(npdeeplab.kernels.__file__), os.path.join(package, "kernels"), ignore=ignore)
        os.makedirs(home)
        os.chmod(home, 0o777)
        for folder, _, files in os.walk(site):
            for name in files:
                os.chmod(os.path.join(folder, name), stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.chmod(folder, 0o555)
        before = sorted(os.walk(site))
        env = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_CACHE")}
        env.update(PYTHONPATH=site, HOME=home, XDG_CACHE_HOME=os.path.join(home, ".cache"), PYTHONDONTWRITEBYTECODE="1")
        try:
            command = [*as_nobody, sys.executable, "-c", COMPILE_ONE_KERNEL, package]
            result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=home)
            assert result.returncode == 0, result.stderr
            index = result.stdout.strip().splitlines()[-1]
            assert index.startswith(home + os.sep), index  # e.g. home/.cache/numba/...
            assert os.path.exists(index)
            assert sorted(os.walk(site)) == before, "nothing may be written into the read-only package"
        finally:
            for folder, _, _ in os.walk(site):
                os.chmod(folder, 0o755)


def test_a_warm_cache_is_recognised_so_warm_runs_do_not_announce_compiling():
    from npdeeplab.kernels.fast import needs_compiling, warm_up

    warm_up()  # compiles, or loads, every kernel the engine calls, writing Numba's cache
    assert not needs_compiling()


THREADED_KERNELS = textwrap.dedent(
    """
    import hashlib
    import numba
    import numpy as np
    from npdeeplab.kernels.conv import ConvParams
    from npdeeplab.kernels.elementwise import BinaryParams
    from npdeeplab.kernels.fast import conv, elementwise
    from npdeeplab.kernels.windows import Window

    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 33, 33, 41), dtype=np.float32)  # 41: the register kernel, its last block overlapping
    w = rng.standard_normal((1, 3, 3, 41), dtype=np.float32)
    params = ConvParams(Window(3, 3, 1, 1, 2, 2, 2, 2, 33, 33), 0.0, 6.0)
    y = conv.depthwise_conv2d(params, x, w, None)
    y[..., :3] = conv.depthwise_conv2d(params, x[..., :3], w[..., :3], None)  # 3 channels: the loops
    z = elementwise.add(BinaryParams(-1.0, 1.0), y, x)
    from npdeeplab.kernels.fast.gemm import generated
    from npdeeplab.kernels.fast.tiles import machine_tiles
    register = getattr(generated(), f"depthwise3x3_{machine_tiles().vector_floats}")
    kernels = (conv._depthwise, register, elementwise._binary_same_shape)
    hits = sum(sum(kernel.stats.cache_hits.values()) for kernel in kernels)
    print(numba.get_num_threads(), hits, hashlib.sha256(y.tobytes() + z.tobytes()).hexdigest())
    """
)


def test_a_cache_written_with_two_threads_loads_and_runs_with_one_and_back(tmp_path):
    """cache=True with parallel=True once crashed other projects when the thread count changed."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    runs = []
    for threads in (2, 1, 2):
        command = [sys.executable, "-c", THREADED_KERNELS]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                env={**env, "NUMBA_NUM_THREADS": str(threads)})
        assert result.returncode == 0, result.stderr
        runs.append(result.stdout.split())
    assert [run[0] for run in runs] == ["2", "1", "2"]
    assert [run[1] for run in runs] == ["0", "3", "3"]  # compiled once, then every kernel loaded from the cache
    assert runs[0][2] == runs[1][2] == runs[2][2]
