"""The register-tiled kernels (kernels/fast/tiles.py) equal the NumPy specification at every edge
of their tiles, and the code LLVM makes of them is what the generator promises."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from npdeeplab.runtime.backends import numba_available

IN_CI = os.environ.get("CI") == "true"
if not numba_available():
    if IN_CI:
        pytest.fail("Numba does not import in CI; the Numba backend must be tested", pytrace=False)
    pytest.skip("Numba is not installed", allow_module_level=True)

from npdeeplab.kernels import conv as reference  # noqa: E402
from npdeeplab.kernels.conv import ConvParams  # noqa: E402
from npdeeplab.kernels.fast import conv as fast  # noqa: E402
from npdeeplab.kernels.fast import gemm, tiles  # noqa: E402
from npdeeplab.kernels.windows import Window  # noqa: E402
from npdeeplab.ops.conv import output_size_and_padding  # noqa: E402

RNG = np.random.default_rng(7)
MACHINE = tiles.machine_tiles()


def floats(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def close(got: np.ndarray, expected: np.ndarray, depth: int) -> None:
    """Equal to float32 rounding of a sum of `depth` products (FMA contraction, BLAS's order)."""
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    np.testing.assert_allclose(got, expected, rtol=0, atol=4e-7 * np.sqrt(depth) * scale * 4)


@pytest.mark.parametrize("tile", [MACHINE.wide, MACHINE.narrow], ids=lambda t: t.name)
@pytest.mark.parametrize("rows", [1, 7, 8, 9, 33, 100])
@pytest.mark.parametrize("extra_channels", [0, 1, 5])  # channels missing from the last panel
def test_gemm_every_tile_edge(tile: tiles.Tile, rows: int, extra_channels: int) -> None:
    """Rows past the last full tile (the one-row kernel) and channels past the last full panel
    (computed into the edge scratch) are written; nothing outside `out` is."""
    channels = tile.nr * 3 - extra_channels
    depth = 13
    a, w, b = floats(rows, depth), floats(channels, 1, 1, depth), floats(channels)
    guard = np.full((rows, channels + 3), 7.0, dtype=np.float32)
    out = guard[:, :channels]  # a strided view, as a concatenation's slice would be
    assert tiles.panel_width(MACHINE, channels) == tile.nr
    gemm.gemm_bias_clamp(a, w, b, -1.5, 2.5, out)
    expected = np.clip(a @ w.reshape(channels, depth).T + b, -1.5, 2.5)
    close(out, expected, depth)
    assert (guard[:, channels:] == 7.0).all()


def test_panel_width_prefers_fewer_vector_fmas() -> None:
    lanes = MACHINE.vector_floats
    assert tiles.panel_width(MACHINE, MACHINE.wide.nr * 4) == MACHINE.wide.nr
    assert tiles.panel_width(MACHINE, max(1, lanes // 2)) == min(MACHINE.wide.nr, MACHINE.narrow.nr) or lanes < 8


def test_packed_weights_are_reused_and_released() -> None:
    w, b = floats(40, 1, 1, 6), floats(40)
    w.flags.writeable = b.flags.writeable = False  # constants, as the model's tensors are
    first = gemm.packed(w, b)
    assert gemm.packed(w, b)[0] is first[0]
    key = (id(w), id(b))
    del w, first
    assert key not in gemm._packed


@pytest.mark.parametrize("changed", ["filter", "bias"])
def test_a_filter_or_bias_computed_at_run_time_is_packed_afresh(changed: str) -> None:
    """The same writable buffer with new values (an op's output, say) must not reuse old panels."""
    p = ConvParams(Window(1, 1, 1, 1, 1, 1, 0, 0, 4, 4), -np.inf, np.inf)
    x, w, b = floats(1, 4, 4, 8), floats(40, 1, 1, 8), floats(40)
    fast.conv2d(p, x, w, b)
    (w if changed == "filter" else b)[...] *= 2
    close(fast.conv2d(p, x, w, b), reference.conv2d(p, x, w, b), 8)


def test_gemm_nan_and_inf_pass_through_the_clamp() -> None:
    a = floats(16, 4)
    a[3, 1], a[5, 2] = np.nan, np.inf
    w = np.abs(floats(MACHINE.wide.nr, 1, 1, 4)) + 0.1
    out = np.empty((16, MACHINE.wide.nr), np.float32)
    gemm.gemm_bias_clamp(a, w, None, -np.inf, np.inf, out)
    assert np.isnan(out[3]).all() and np.isposinf(out[5]).all()


def conv_case(size: int, channels: int, stride: int, dilation: int, padding: str) -> tuple:
    out, pad = output_size_and_padding(size, 3, stride, dilation, padding)
    window = Window(3, 3, stride, stride, dilation, dilation, pad, pad, out, out)
    return ConvParams(window, 0.0, 6.0), floats(2, size, size, channels)


@pytest.mark.parametrize("channels", [5, 16, 17, 40, 72, 100])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2), (1, 4)])
@pytest.mark.parametrize("size, padding", [(9, "SAME"), (12, "VALID"), (3, "SAME")])
def test_depthwise_register_kernel_matches_the_specification(
    channels: int, stride: int, dilation: int, size: int, padding: str
) -> None:
    """The register kernel's blocks of lanes, the last overlapping the one before (17, 40, 72
    channels), fewer channels than a vector (the loops), and on AVX2 the loops for 72 and 100
    channels, with border pixels, on inputs where the interior is large, thin or empty."""
    if padding == "VALID" and 2 * dilation + 1 > size:
        pytest.skip("the window does not fit")
    p, x = conv_case(size, channels, stride, dilation, padding)
    w, b = floats(1, 3, 3, channels), floats(channels)
    expected = reference.depthwise_conv2d(p, x, w, b)
    got = fast.depthwise_conv2d(p, x, w, b)
    close(got, expected, 9)


@pytest.mark.parametrize("channels", [8, 64, 100])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 4)])
def test_depthwise_loops_match_the_specification_and_the_register_kernel(
    channels: int, stride: int, dilation: int
) -> None:
    """The loop nest, which runs the wide layers on AVX2, on every machine: against the reference
    within float rounding, and, where the register kernel fits, bit for bit against it (the same
    sums in the same order, both with fused multiply-adds)."""
    p, x = conv_case(13, channels, stride, dilation, "SAME")
    w, b = floats(1, 3, 3, channels), floats(channels)
    w.flags.writeable = False
    got = np.empty((2, p.window.out_h, p.window.out_w, channels), np.float32)
    fast._depthwise(x, w[0], b, 1, *fast.window_args(p.window), np.float32(0), np.float32(6), got)
    close(got, reference.depthwise_conv2d(p, x, w, b), 9)
    if fast.fits_register_kernel(w.shape, channels):
        register = np.empty_like(got)
        kernel = getattr(gemm.generated(), f"depthwise3x3_{MACHINE.vector_floats}")
        kernel(x, w[0], b, np.float32(0), np.float32(6), register, *fast.window_args(p.window))
        np.testing.assert_array_equal(got, register)


@pytest.mark.parametrize("kernel, stride", [(3, 2), (3, 1), (1, 1), (5, 2)])
def test_conv2d_through_the_gemm_matches_the_specification(kernel: int, stride: int) -> None:
    size, cin, cout = 17, 3 if kernel == 3 else 24, 21
    out, pad = output_size_and_padding(size, kernel, stride, 1, "SAME")
    p = ConvParams(Window(kernel, kernel, stride, stride, 1, 1, pad, pad, out, out), -1.0, 6.0)
    x, w, b = floats(1, size, size, cin), floats(cout, kernel, kernel, cin), floats(cout)
    close(fast.conv2d(p, x, w, b), reference.conv2d(p, x, w, b), kernel * kernel * cin)


def test_generated_source_is_rewritten_only_when_it_changes(tmp_path: object) -> None:
    path = tmp_path / "tiles.py"
    gemm._write_if_changed(path, "x = 1\n")
    stamp = path.stat().st_mtime_ns
    gemm._write_if_changed(path, "x = 1\n")
    assert path.stat().st_mtime_ns == stamp
    gemm._write_if_changed(path, "x = 2\n")
    assert path.read_text() == "x = 2\n"


@pytest.mark.skipif(MACHINE.isa not in ("avx512", "avx2"), reason="the instruction check reads x86 assembly")
@pytest.mark.parametrize("kind", ["gemm", "direct"])
def test_the_k_loop_is_broadcasts_loads_and_vector_fmas(tmp_path: object, kind: str) -> None:
    """Compiled afresh (no cache), as the engine compiles it (the tile inlined into its driver), the
    narrow tile's K loop has no gather, no scalar FMA and no repacking of accumulators: what the SLP
    vectoriser and `prefer-no-gather` are switched on for. The direct tile (A read from the padded
    input at tap offsets) too. The K loop is the loop (a block that jumps back to its own label)
    with the most FMAs."""
    script = textwrap.dedent(f"""
        import re
        import numpy as np
        from npdeeplab.kernels.conv import ConvParams
        from npdeeplab.kernels.fast import conv, gemm, tiles
        from npdeeplab.kernels.windows import Window
        tile = tiles.machine_tiles().narrow
        w = np.ones((tile.nr, 3, 3, 8) if {kind!r} == "direct" else (tile.nr, 8), np.float32)
        w.flags.writeable = False
        if {kind!r} == "gemm":
            gemm.gemm_bias_clamp(np.ones((9, 8), np.float32), w, None, 0.0, 6.0, np.empty((9, tile.nr), np.float32))
        else:
            conv.conv2d(ConvParams(Window(3, 3, 1, 1, 1, 1, 1, 1, 3, 3), 0.0, 6.0), np.ones((1, 3, 3, 8), np.float32),
                        w, None)
        f = getattr(gemm.generated(), {kind!r} + "_" + tile.name)
        asm = f.inspect_asm(f.signatures[0]).splitlines()
        loops, label, block = [], None, []
        for line in asm:
            found = re.match(r"^(\\.LBB\\d+_\\d+):", line)
            if found:
                label, block = found.group(1), []
            elif line.startswith("\\t"):
                block.append(line)
                if label and re.match(r"^\\s+j\\w+\\s+" + re.escape(label) + r"$", line):
                    loops.append(block)
        print("\\n".join(max(loops, key=lambda b: sum("vfmadd" in line for line in b))))
    """)
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "NPDEEPLAB_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    loop = done.stdout.splitlines()
    vector = "zmm" if MACHINE.isa == "avx512" else "ymm"
    fmas = [line for line in loop if "vfmadd" in line]
    assert len(fmas) >= tile_fmas(MACHINE.narrow) and all(vector in line for line in fmas), loop
    mnemonics = [line.split()[0] for line in loop]
    scalar = [m for m in mnemonics if m.endswith("ss") and m != "vbroadcastss"]
    assert not scalar and not [m for m in mnemonics if "gather" in m or m == "vinsertps"], loop


def tile_fmas(tile: tiles.Tile) -> int:
    return tile.mr * tile.nr // MACHINE.vector_floats
