"""Compiling ahead of a first run: the kernels a model calls and no others, on two cores.

Numba compiles a kernel the first time it is called with new argument types and caches the
machine code on disk. A first run on a machine would stop at op after op to compile; instead the
interpreter asks which compile units its prepared ops need (`units_for`), and `compile_units`
compiles those no cache holds yet before the run. Where there is a second core, a second process
works through the same list: each unit is claimed by creating a file, so whichever process is
free takes the next one, largest first (the register tiles take seconds each).

A unit is a call on tiny valid inputs that compiles what one kernel calls, with the argument types
real runs pass (tests/test_compiling.py checks that a model's first invoke adds no signature);
the integer kernels' units are per input type ("integer.pool:uint8"). A compiled unit leaves a
marker beside Numba's cache, stamped with the sources it was compiled from.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from npdeeplab.kernels.fast import (
    conv,
    elementwise,
    integer,
    pool,
    rectifiers,
    reduce,
    resize,
    transpose_conv,
)
from npdeeplab.kernels.fast.gemm import gemm_bias_clamp, generated
from npdeeplab.kernels.fast.tiles import Tile, depthwise_lanes, machine_tiles, tile_for


@dataclass(frozen=True)
class Unit:
    """What one call compiles, taking about `seconds` here (for the order); `dispatchers` say where
    its marker goes (beside their cache) and which sources it was compiled from."""

    name: str
    dispatchers: Callable[[], list]
    compile: Callable[[], None]
    seconds: float = 1.0


def units_for(kernel: str, params: object, shapes: Sequence[tuple[int, ...] | None],
              dtypes: Sequence[np.dtype | None]) -> tuple[str, ...]:
    """The units a call of this Numba kernel needs, given its inputs' shapes and dtypes (None: absent)."""
    if kernel == "conv2d":
        return _tile_units(params.window, shapes[0], shapes[1])
    if kernel == "conv2d_quantized":  # exact float32 sums on the tiles, rescaled in their epilogue or after
        tiles, dtype = _tile_units(params.window, shapes[0], shapes[1]), np.dtype(dtypes[0]).name
        fused = integer.conv.fuses_rescaling(params)  # None: it depends on a filter computed at run time
        rescaling = tuple(f"q{tile}:{dtype}" for tile in tiles if fused is not False)
        return (f"integer.conv2d:{dtype}", *(tiles if not fused else ()), *rescaling) if tiles else ()
    if kernel == "fully_connected":
        return (_tile_unit("gemm", shapes[1][0]),)
    if kernel == "fully_connected_quantized":
        return (f"integer.fully_connected:{np.dtype(dtypes[0]).name}", _tile_unit("gemm", shapes[1][0]))
    if kernel == "depthwise_conv2d":
        if conv.runs_register_kernel(shapes[1], shapes[0][3]):
            return (f"depthwise3x3_{depthwise_lanes(machine_tiles())}",)
        return ("depthwise",)
    if kernel == "depthwise_conv2d_quantized" and integer.conv.on_register_kernel(params, shapes[0], shapes[1]):
        return (f"qdepthwise3x3_{depthwise_lanes(machine_tiles())}:{np.dtype(dtypes[0]).name}",)
    unit = KERNEL_UNITS.get(kernel)
    if unit is None:
        return ()
    if unit in PER_DTYPE:
        unit = f"{unit}:{np.dtype(dtypes[0]).name}"  # e.g. "integer.pool:uint8"
    return (unit,) if unit in all_units() else ()


def _tile_units(window: object, x: tuple[int, ...], w: tuple[int, ...]) -> tuple[str, ...]:
    """The tile a convolution's sums run on: the GEMM for 1x1, its direct twin for K x K; none
    where the reference runs it (conv.on_tiles)."""
    if not conv.on_tiles(window, x, w):
        return ()
    return (_tile_unit("gemm" if conv.is_pointwise(window) else "direct", w[0]),)


def _tile_unit(kind: str, channels: int) -> str:
    return f"{kind}_{tile_for(machine_tiles(), channels).name}"


def uncached(names: Iterable[str]) -> list[str]:
    """The units this machine has not compiled yet (or compiled from other sources), largest first."""
    table = all_units()
    try:
        missing = {n for n in names if not _is_compiled(table[n])}
    except (AttributeError, OSError):  # a Numba whose cache internals moved: compile lazily rather than guess
        return []
    return sorted(missing, key=lambda n: (-table[n].seconds, n))


def compile_units(names: Sequence[str]) -> None:
    """Compile these units (or load them from the cache), sharing them with a second process
    where there is a second core; on return every one is loaded in this process."""
    from npdeeplab.runtime.threads import default_threads

    with tempfile.TemporaryDirectory(prefix="npdeeplab-compiling-") as claims:
        helper = _helper(claims, names) if len(names) > 1 and default_threads() >= 2 else None
        try:
            compile_claimed(claims, names)
        finally:
            if helper is not None:
                helper.wait()  # if it failed, the loop below compiles its units here
    for name in names:
        _compile(all_units()[name])  # the helper's: loaded from the cache it wrote


def compile_claimed(claims: str, names: Sequence[str]) -> None:
    """Compile each unit this process is first to claim, in the order given."""
    for name in names:
        try:
            os.close(os.open(os.path.join(claims, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue  # the other process has it
        except OSError:
            return  # the claims directory is gone: the main process has finished
        _compile(all_units()[name])


def _is_compiled(unit: Unit) -> bool:
    try:
        return _marker(unit).read_text() == _stamp(unit)
    except FileNotFoundError:
        return False


def _compile(unit: Unit) -> None:
    unit.compile()
    marker = _marker(unit)
    scratch = marker.with_suffix(f".{os.getpid()}.tmp")
    try:
        scratch.write_text(_stamp(unit))
        os.replace(scratch, marker)
    except OSError:
        pass  # an unwritable cache: Numba compiles in memory, and so will the next run


def _helper(claims: str, names: Sequence[str]) -> subprocess.Popen | None:
    code = ("import sys; from npdeeplab.kernels.fast.compiling import compile_claimed; "
            "compile_claimed(sys.argv[1], sys.argv[2:])")
    try:
        return subprocess.Popen([sys.executable, "-c", code, claims, *names], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def _marker(unit: Unit) -> Path:
    """A file beside Numba's cache of the unit's first dispatcher, written once the unit compiled.

    Numba's own index says a dispatcher has some signatures cached, not which: the marker says
    this unit's were, and against which sources (its stamp), as Numba keys its cache."""
    return Path(unit.dispatchers()[0]._cache._cache_path) / f"npdeeplab-unit-{unit.name}.txt"


def _stamp(unit: Unit) -> str:
    files = sorted({d.py_func.__code__.co_filename for d in unit.dispatchers()})
    lines = [f"numba {numba.__version__}"]
    for file in files:
        status = os.stat(file)
        lines.append(f"{file} {status.st_mtime_ns} {status.st_size}")
    return "\n".join(lines) + "\n"


def module_dispatchers(module: object) -> list:
    """A module's Numba dispatchers that Python calls (those inlined into others have no cache entry)."""
    return [f for f in vars(module).values()
            if isinstance(f, numba.core.registry.CPUDispatcher) and f.targetoptions.get("inline", "never") == "never"]


# --- the units ----------------------------------------------------------------------------------

def _images(channels: int = 2) -> np.ndarray:
    return np.ones((1, 3, 3, channels), dtype=np.float32)


def _constant(channels: int) -> np.ndarray:
    """A depthwise filter as models hold them: read-only (Numba types those apart)."""
    w = np.ones((1, 3, 3, channels), dtype=np.float32)
    w.flags.writeable = False
    return w


def _window3x3() -> object:
    from npdeeplab.kernels.windows import Window

    return Window(3, 3, 1, 1, 1, 1, 1, 1, 3, 3)


def _conv_params() -> object:
    from npdeeplab.kernels.conv import ConvParams

    return ConvParams(_window3x3(), 0.0, 6.0)


def _gemm(tile: Tile) -> Unit:
    def run() -> None:  # tile.nr channels: this tile's layer (a partial panel's edge scratch has the same type)
        gemm_bias_clamp(np.ones((9, 2), np.float32), np.ones((tile.nr, 1, 1, 2), np.float32), None, 0.0, 6.0,
                        np.empty((9, tile.nr), np.float32))

    return Unit(f"gemm_{tile.name}", lambda: [getattr(generated(), f"gemm_{tile.name}")], run, seconds=6.0)


def _direct(tile: Tile) -> Unit:
    def run() -> None:  # a 3x3 convolution of tile.nr channels, its filter read-only as a model's
        w = np.ones((tile.nr, 3, 3, 2), np.float32)
        w.flags.writeable = False
        conv.conv2d(_conv_params(), _images(), w, None)

    return Unit(f"direct_{tile.name}", lambda: [getattr(generated(), f"direct_{tile.name}")], run, seconds=6.0)


def _rescaling_tile(kind: str, tile: Tile, dtype: type) -> Unit:
    """A tile with the RESCALE epilogue, e.g. "qgemm_4x32:uint8"."""
    return _quantized_generated(f"q{kind}_{tile.name}", dtype, 6.0,
                                lambda: integer.conv.warm_up_rescaling_tile(kind, tile.nr, (dtype,)))


def _quantized_generated(name: str, dtype: type, seconds: float, run: Callable[[], None]) -> Unit:
    """A generated kernel's unit for one input type: `name` in the generated module."""
    return Unit(f"{name}:{np.dtype(dtype).name}", lambda: [getattr(generated(), name)], run, seconds)


def _register_depthwise(lanes: int) -> Unit:
    def run() -> None:
        conv.depthwise_conv2d(_conv_params(), _images(lanes), _constant(lanes), None)

    return Unit(f"depthwise3x3_{lanes}", lambda: [getattr(generated(), f"depthwise3x3_{lanes}")], run, seconds=9.0)


def _quantized_register_depthwise(lanes: int, dtype: type) -> Unit:
    return _quantized_generated(f"qdepthwise3x3_{lanes}", dtype, 9.0,
                                lambda: integer.conv.warm_up_register_depthwise(lanes, (dtype,)))


def _float_kernel_units() -> list[Unit]:
    from npdeeplab.kernels.activation import SoftmaxParams
    from npdeeplab.kernels.elementwise import BinaryParams
    from npdeeplab.kernels.pool import PoolParams
    from npdeeplab.kernels.reduce import ReduceParams
    from npdeeplab.kernels.resize import ResizeParams

    x, window = _images(), _window3x3()

    def depthwise() -> None:  # 2 channels: fewer than any register kernel's lanes
        conv.depthwise_conv2d(_conv_params(), x, _constant(2), None)

    def pooling() -> None:
        pool.average_pool2d(PoolParams(window, 0.0, 6.0), x)
        pool.max_pool2d(PoolParams(window, 0.0, 6.0), x)

    return [
        Unit("depthwise", lambda: [conv._depthwise], depthwise, seconds=2.0),
        Unit("pool", lambda: [pool._pool2d], pooling),
        Unit("bilinear", lambda: [resize._bilinear],
             lambda: resize.resize_bilinear(ResizeParams(5, 5, True, False), x)),
        Unit("nearest", lambda: [resize._nearest],
             lambda: resize.resize_nearest_neighbor(ResizeParams(5, 5, False, True), x)),
        Unit("binary", lambda: [elementwise._binary_same_shape], lambda: elementwise.add(BinaryParams(0.0, 6.0), x, x)),
        Unit("clamp", lambda: [elementwise._clamp], lambda: elementwise.relu(None, x)),
        Unit("softmax", lambda: [elementwise._softmax_rows], lambda: elementwise.softmax(SoftmaxParams(1.0), x)),
        Unit("mean", lambda: [reduce._spatial_sum], lambda: reduce.mean(ReduceParams((1, 2), True), x)),
    ]


def _module_unit(name: str, module: object, seconds: float = 1.0, dtype: type | None = None,
                 warm_up: Callable | None = None) -> Unit:
    """A module's kernels, or (with dtype) their signatures for that integer type only."""
    warm_up = warm_up or module.warm_up
    if dtype is None:
        return Unit(name, functools.partial(module_dispatchers, module), warm_up, seconds)
    return Unit(f"{name}:{np.dtype(dtype).name}", functools.partial(module_dispatchers, module),
                functools.partial(warm_up, (dtype,)), seconds)


def _arg_unit(dtype: type) -> Unit:
    def run() -> None:
        from npdeeplab.kernels.reduce import ArgParams

        for index in (np.int32, np.int64):
            reduce.arg_max(ArgParams(3, np.dtype(index)), _images().astype(dtype))

    return Unit(f"arg:{np.dtype(dtype).name}", lambda: [reduce._arg_last_axis], run)


_INTEGER = (np.uint8, np.int8)
# Integer kernels by module, and the units whose names end in the input's dtype (e.g. "pool:uint8").
_PER_DTYPE_MODULES = {"elementwise": _INTEGER, "fully_connected": _INTEGER, "pool": _INTEGER,
                      "rectifiers": _INTEGER, "reduce": _INTEGER, "transpose_conv": _INTEGER,
                      "resize": (*_INTEGER, np.int16)}
PER_DTYPE = frozenset({"arg", "integer.conv2d", "integer.depthwise"} | {f"integer.{m}" for m in _PER_DTYPE_MODULES})


def _integer_unit_of(module: object, kernel: str) -> str:
    if module is integer.conv:
        return "integer.depthwise" if kernel.startswith("depthwise") else "integer.conv2d"
    return f"integer.{module.__name__.rsplit('.', 1)[1]}"


# Kernel name -> the unit it calls; conv2d, depthwise_conv2d and fully_connected depend on shapes (units_for).
KERNEL_UNITS: dict[str, str] = {
    "average_pool2d": "pool", "max_pool2d": "pool",
    "resize_bilinear": "bilinear", "resize_nearest_neighbor": "nearest",
    "add": "binary", "sub": "binary", "mul": "binary",
    "relu": "clamp", "relu6": "clamp", "relu_n1_to_1": "clamp",
    "softmax": "softmax", "mean": "mean", "arg_max": "arg", "arg_min": "arg",
    **{kernel: kernel for kernel in rectifiers.KERNELS},
    **{kernel: "transpose_conv" for kernel in transpose_conv.KERNELS},
    **{kernel: _integer_unit_of(m, kernel) for m in integer.MODULES for kernel in m.KERNELS},
}


@functools.cache
def all_units() -> dict[str, Unit]:
    tiles = machine_tiles()
    units = [_gemm(tiles.wide), _gemm(tiles.narrow), _direct(tiles.wide), _direct(tiles.narrow),
             _register_depthwise(depthwise_lanes(tiles))]
    units += _float_kernel_units() + [_arg_unit(dtype) for dtype in (np.float32, *_INTEGER)]
    units += [Unit(kernel, functools.partial(module_dispatchers, rectifiers),
                   functools.partial(rectifiers.warm_up, (kernel,))) for kernel in rectifiers.KERNELS]
    units += [_module_unit("transpose_conv", transpose_conv), _module_unit("integer.quantize", integer.quantize)]
    for dtype in _INTEGER:
        units += [_module_unit("integer.conv2d", integer.conv, 8.0, dtype, integer.conv.warm_up_conv2d),
                  _module_unit("integer.depthwise", integer.conv, 6.0, dtype, integer.conv.warm_up_depthwise),
                  _quantized_register_depthwise(depthwise_lanes(tiles), dtype)]
        units += [_rescaling_tile(kind, tile, dtype) for kind in ("gemm", "direct")
                  for tile in (tiles.wide, tiles.narrow)]
    for name, dtypes in _PER_DTYPE_MODULES.items():
        units += [_module_unit(f"integer.{name}", getattr(integer, name), 2.0, dtype) for dtype in dtypes]
    return {unit.name: unit for unit in units}


def every_unit() -> list[str]:
    """All units, largest first: what `warm_up` compiles for the fuzzer and the tests."""
    table = all_units()
    return sorted(table, key=lambda n: (-table[n].seconds, n))
