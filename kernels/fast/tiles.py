"""The register tiles of the float GEMM, and the one generator that writes their source.

A GEMM microkernel computes an MR x NR block of C = A @ B + bias, clamped, over the whole of K.
Numba (LLVM) keeps a value in a register only when it is a scalar local, so the MR*NR accumulators
are written as named locals `c_<i>_<j>`; LLVM's SLP vectoriser (switched on in kernels/fast/config.py)
then packs each row's NR accumulators into NR/VW vector registers, and the K loop becomes
broadcast + vector FMA with no load or store of an accumulator. An `np.zeros((MR, NR))` tile stays in
memory instead: every FMA would load and store it.

B is packed once per weight tensor into panels `[P, K, NR]` (output channels padded with zeros to
a multiple of NR), so the K loop reads NR contiguous weights. The epilogue adds the bias, clamps to
the fused activation and writes straight into C, which is flat with a row stride `ldc`: C's rows
may be longer than the layer's channels, as a concatenation's buffer is, whose slice a tile fills
in place. Rows past the last full tile run a one-row kernel; the last panel of a layer whose
channels are not a multiple of NR is computed into a scratch tile and its valid columns copied.
The tile is inlined into the driver, from one call site: called, it cost more than its K loop
when K is 8 to 16.

Which tiles: two per machine, chosen by vector width — a wide one for many output channels and a
narrow one for the thin layers (8 to 24 channels) where a wide panel would mostly multiply zeros.
The register budget: MR * NR / VW accumulators + NR / VW weight vectors + a broadcast at a time.
MR is a power of two: with MR = 6 or 12 (LLVM 22, Numba 0.68) the SLP vectoriser kept the
accumulators as scalars and repacked them into vectors on every step of the K loop, 20x the
instructions; the K loop of 4x32 is 4 broadcasts, 2 loads and 8 FMAs. (8x32 ran no faster and
took 20 s to compile, against 6.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Tile:
    mr: int  # rows of A (output pixels) per tile
    nr: int  # columns of B (output channels) per tile

    @property
    def name(self) -> str:
        return f"{self.mr}x{self.nr}"


@dataclass(frozen=True)
class MachineTiles:
    isa: str  # what the tiles were chosen for, e.g. "avx512"
    vector_floats: int  # float32 lanes per vector register
    wide: Tile
    narrow: Tile
    # Float 3x3 depthwise layers of this many channels or more run kernels/fast/conv.py's loop nest
    # (channels innermost, weights from memory) instead of the register kernel; None: never. On
    # AVX2 (Zen 3, 2026-12-02) the loops took 0.67-0.98x the register kernel's time from 72
    # channels up, and 1.64x on 16 (register kernel: 9 weight vectors of 16 ymm; loops: all channels
    # of a pixel in a row). AVX-512's register kernel was measured, its loops not.
    depthwise_loops_from: int | None = None


@functools.cache
def machine_tiles() -> MachineTiles:
    """The tiles for this CPU, from LLVM's view of its features (llvmlite)."""
    import platform

    from llvmlite import binding

    features = binding.get_host_cpu_features()
    if features.get("avx512f"):  # 32 zmm of 16 floats; accumulators + weight vectors: 8 + 2, 8 + 1
        return MachineTiles("avx512", 16, Tile(4, 32), Tile(8, 16))
    if features.get("avx2") and features.get("fma"):  # 16 ymm of 8 floats: 8 + 2, 8 + 1
        return MachineTiles("avx2", 8, Tile(4, 16), Tile(8, 8), depthwise_loops_from=64)
    if platform.machine().lower() in ("aarch64", "arm64"):  # 32 NEON of 4 floats: 16 + 4, 16 + 2 (untested here)
        return MachineTiles("neon", 4, Tile(4, 16), Tile(8, 8))
    return MachineTiles("generic", 4, Tile(4, 8), Tile(4, 4))


def depthwise_lanes(tiles: MachineTiles) -> int:
    """Channels per block of the depthwise kernel: one vector register of floats."""
    return tiles.vector_floats


def tile_for(tiles: MachineTiles, channels: int) -> Tile:
    """The tile for a layer of `channels` outputs: the one needing the fewest vector FMAs per row
    of A (padded channels count), the wide one on a tie."""

    def vector_fmas(tile: Tile) -> int:
        panels = -(-channels // tile.nr)
        return panels * -(-tile.nr // tiles.vector_floats)

    return min((tiles.wide, tiles.narrow), key=vector_fmas)


def panel_width(tiles: MachineTiles, channels: int) -> int:
    """NR, the width of the weight panels, for a layer of `channels` outputs."""
    return tile_for(tiles, channels).nr


@dataclass(frozen=True)
class Epilogue:
    """What a tile does with its sums: `args` name the per-column constants it takes (padded to
    the panels' width), `loads` bind column j's into locals ({j}; `first` is the panel's first
    column) and `store` is the value stored from the sum `{c}` of column j."""

    prefix: str  # of the generated functions' names
    args: str
    loads: tuple[str, ...]
    store: str


# The float GEMM: bias, then the fused activation's clamp.
BIAS_CLAMP = Epilogue("", "bias, low, high", ("b_{j} = bias[first + {j}]",), "clamp({c} + b_{j}, low, high)")
# The quantized convolution (exact integer sums): MultiplyByQuantizedMultiplier, the bias and the
# output zero point folded into `start`, in float64, as fixed_point.multiply_by_quantized_multiplier_float64.
RESCALE = Epilogue("q", "scale, start, step, threshold, low, high",
                   ("k_{j} = scale[first + {j}]", "s_{j} = start[first + {j}]", "d_{j} = step[first + {j}]"),
                   "rescaled({c} * k_{j} + s_{j}, d_{j}, threshold, low, high)")


def _tile(header: str, k_count: str, tile: Tile, load: str, epilogue: Epilogue) -> list[str]:
    """A full tile: MR*NR accumulators, the K loop (NR weights, the MR values of A that `load`
    gives for row i, MR*NR FMAs), then the epilogue and a store of all NR columns."""
    cells = [(i, j) for i in range(tile.mr) for j in range(tile.nr)]
    return [
        header,
        f"    k_count = {k_count}",
        *[f"    c_{i}_{j} = np.float32(0)" for i, j in cells],
        "    for k in range(k_count):",
        *[f"        w_{j} = packed[panel, k, {j}]" for j in range(tile.nr)],
        *[f"        a_{i} = {load.format(i=i)}" for i in range(tile.mr)],
        *[f"        c_{i}_{j} += a_{i} * w_{j}" for i, j in cells],
        f"    first = panel * {tile.nr}",
        *[f"    {line.format(j=j)}" for line in epilogue.loads for j in range(tile.nr)],
        *[f"    at_{i} = np.uint64((row + {i}) * ldc + col)" for i in range(tile.mr)],
        *[f"    out[at_{i} + np.uint64({j})] = {epilogue.store.format(c=f'c_{i}_{j}', j=j)}" for i, j in cells],
    ]


def _row(header: str, k_count: str, tile: Tile, load: str, epilogue: Epilogue) -> list[str]:
    """One row of A against one panel, its valid columns stored: the rows after the full tiles."""
    return [
        header,
        f"    k_count = {k_count}",
        *[f"    c_{j} = np.float32(0)" for j in range(tile.nr)],
        "    for k in range(k_count):",
        f"        a_0 = {load}",
        *[f"        c_{j} += a_0 * packed[panel, k, {j}]" for j in range(tile.nr)],
        "    first = col",
        *[f"    if {j} < cols:\n" + "".join(f"        {line.format(j=j)}\n" for line in epilogue.loads)
          + f"        out[np.uint64(row * ldc + col + {j})] = {epilogue.store.format(c=f'c_{j}', j=j)}"
          for j in range(tile.nr)],
    ]


def _panels(tile: Tile, indent: str, tiles: str, call_tile: str, leftover: list[str]) -> list[str]:
    """The loop over B's panels for a stretch of rows: the full tiles (`tiles`: the range of their
    first rows), the last panel through `edge` if it is partial, then the `leftover` rows."""
    mr, nr = tile.mr, tile.nr
    return [indent + line for line in [
        "for panel in range(packed.shape[0]):",
        f"    col = panel * {nr}",
        f"    cols = min({nr}, channels - col)",
        f"    whole = cols == {nr}",
        "    target = out if whole else edge",
        "    target_col = col if whole else 0",
        f"    target_ldc = ldc if whole else {nr}",
        f"    for row in range({tiles}):",
        f"        {call_tile}",
        "        if not whole:",
        f"            for i in range(row, row + {mr}):",
        "                for j in range(cols):",
        f"                    out[np.uint64(i * ldc + col + j)] = edge[np.uint64(i * {nr} + j)]",
        *["    " + line for line in leftover],
    ]]


def gemm_source(tile: Tile, epilogue: Epilogue = BIAS_CLAMP) -> str:
    """Python source of `tile_<MR>x<NR>` (a full tile), `row_<MR>x<NR>` (one row) and `gemm_<MR>x<NR>` (the
    parallel driver over row chunks and panels), for Numba to compile; with the RESCALE epilogue,
    `qtile_`, `qrow_` and `qgemm_`, which store 8-bit values.

    A full tile always stores all NR columns: the last panel of a layer whose channels are not a
    multiple of NR is computed into `edge` (rows x NR scratch of out's type) and its valid columns
    copied out, so the tile has no branch in its epilogue and LLVM vectorises the stores too.
    """
    mr, nr, name, q = tile.mr, tile.nr, tile.name, epilogue.prefix
    common = f"packed, panel, {epilogue.args}, out, ldc, row, col"
    return "\n".join([
        *_tile(f"def {q}tile_{name}(a, {common}):", "a.shape[1]", tile, "a[row + {i}, k]", epilogue),
        "",
        "",
        *_row(f"def {q}row_{name}(a, {common}, cols):", "a.shape[1]", tile, "a[row, k]", epilogue),
        "",
        "",
        f"def {q}gemm_{name}(a, packed, {epilogue.args}, out, ldc, channels, edge, chunk_rows):",
        f'    """out[row * ldc + column] = the epilogue of (a @ B)[row, column], B packed in panels of {nr}; rows in'
        ' chunks of chunk_rows."""',
        "    rows = a.shape[0]",
        "    chunks = (rows + chunk_rows - 1) // chunk_rows",
        "    for chunk in prange(chunks):",
        "        first = chunk * chunk_rows",
        "        last = min(first + chunk_rows, rows)",
        f"        full_end = first + (last - first) // {mr} * {mr}",
        *_panels(tile, "        ", f"first, full_end, {mr}",
                 f"{q}tile_{name}(a, packed, panel, {epilogue.args}, target, target_ldc, row, target_col)",
                 ["for row in range(full_end, last):",
                  f"    {q}row_{name}(a, packed, panel, {epilogue.args}, out, ldc, row, col, cols)"]),
        "",
    ])


def direct_source(tile: Tile, epilogue: Epilogue = BIAS_CLAMP) -> str:
    """Python source of `direct_<MR>x<NR>`: a K x K convolution as the GEMM above, A read straight
    from a zero-padded input instead of im2col's copy (with `dtile_` and `drow_`; `q`-prefixed
    with the RESCALE epilogue).

    Row r of A is output pixel (b, oy, ox) and column k the filter tap (ky, kx, ci); its value is
    flat[base(b, oy, ox) + offsets[k]] in the padded input, base = b*image + oy*row_step +
    ox*col_step, offsets[k] = ky*dh*Wp*C + kx*dw*C + ci: so a tile's MR pixels, neighbours on one
    output row, are col_step apart. Each parallel task is one output row. Indices are unsigned: a
    signed one costs a wrap-around check per load.
    """
    mr, nr, name, q = tile.mr, tile.nr, tile.name, epilogue.prefix
    common = f"packed, panel, {epilogue.args}, out, ldc, row, col"
    return "\n".join([
        *_tile(f"def {q}dtile_{name}(flat, base, col_step, offsets, {common}):", "offsets.shape[0]", tile,
               "flat[np.uint64(base + {i} * col_step) + offsets[k]]", epilogue),
        "",
        "",
        *_row(f"def {q}drow_{name}(flat, base, offsets, {common}, cols):", "offsets.shape[0]", tile,
              "flat[np.uint64(base) + offsets[k]]", epilogue),
        "",
        "",
        f"def {q}direct_{name}(flat, offsets, packed, {epilogue.args}, out, ldc, channels, edge, out_h, out_w, image,"
        " row_step, col_step):",
        f'    """out[((b*out_h + oy)*out_w + ox) * ldc + column] = the epilogue of the convolution; B in panels of'
        f' {nr}."""',
        "    rows = out_h * out_w * (flat.shape[0] // image)",
        f"    full = out_w // {mr} * {mr}",
        "    for line in prange(rows // out_w):",
        "        base = line // out_h * image + line % out_h * row_step",
        "        first = line * out_w",
        *_panels(tile, "        ", f"first, first + full, {mr}",
                 f"{q}dtile_{name}(flat, base + (row - first) * col_step, col_step, offsets, packed, panel, "
                 f"{epilogue.args}, target, target_ldc, row, target_col)",
                 ["for row in range(first + full, first + out_w):",
                  f"    {q}drow_{name}(flat, base + (row - first) * col_step, offsets, packed, panel, "
                  f"{epilogue.args}, out, ldc, row, col, cols)"]),
        "",
    ])


def depthwise_source(lanes: int) -> str:
    """Python source of `depthwise3x3_<V>`: a 3x3 depthwise convolution (multiplier 1) of at least
    V = `lanes` channels, in blocks of V; when V does not divide the channels the last block is the
    last V channels, overlapping the one before it, whose shared channels it writes again with the
    same values (the same sums in the same order), so no narrower kernel need be compiled.

    Each task is one output row and one channel block: its 9 x V weights and V biases are loaded
    into named locals (registers, once SLP packs them) before the loop over the row's pixels, so the
    loop reads only inputs. A pixel whose window lies inside the input takes all 9 taps unchecked;
    a border pixel takes the taps that land inside, each behind one test for the whole block. The
    sum runs over the taps in (ky, kx) order from zero, then adds the bias, and taps outside the
    input are skipped, as in TFLite's reference kernel.

    The arrays are C-contiguous and read and written through flat views at unsigned offsets: a
    signed index costs a wrap-around check per element, and LLVM then builds the lanes' addresses
    one by one instead of issuing one vector load.
    """
    return _depthwise_source(
        f"depthwise3x3_{lanes}(x, w, bias, low, high, out, sh, sw, dh, dw, pad_top, pad_left)",
        "out = the 3x3 depthwise convolution of x (NHWC), for at least as many channels as lanes.",
        lanes, block=["b_{j} = bias[c0 + {j}]"], value="flat_x[at + np.uint64({j})]",
        border_value="flat_x[at + np.uint64({j})]", finish=[], store="clamp(s_{j} + b_{j}, low, high)",
        exact_integers=False)


def quantized_depthwise_source(lanes: int) -> str:
    """Python source of `qdepthwise3x3_<V>`: the same kernel for 8-bit data (uint8 or int8), summing
    in float32 as integers/conv.py does, exactly: inside the input x * (w - zp_w) plus the
    channel's `sums` (input_offset times the sum of its taps), at the border (x + input_offset) *
    (w - zp_w) over the taps inside. Each sum is rescaled as it is stored, in float64:
    fixed_point.multiply_by_quantized_multiplier_float64's one-floor form, bias and output zero
    point folded into `start`, floor(s * scale + start - step [below threshold]), clamped.

    The sums are exact integers, so their order is free: an inside pixel sums each row of taps
    apart and adds the three (three short chains of FMAs, not one of nine), and a border pixel
    loops over the taps, its weights read from memory (border pixels are few; written out, the
    border doubled the kernel's compile time)."""
    return _depthwise_source(
        f"qdepthwise3x3_{lanes}(x, w, sums, offset, scale, start, step, threshold, low, high, out, sh, sw, dh, dw,"
        " pad_top, pad_left)",
        "out = the quantized 3x3 depthwise convolution of 8-bit x (NHWC), rescaled.",
        lanes, block=["o_{j} = sums[c0 + {j}]", "k_{j} = scale[c0 + {j}]", "a_{j} = start[c0 + {j}]",
                      "d_{j} = step[c0 + {j}]"],
        value="np.float32(flat_x[at + np.uint64({j})])",
        border_value="(np.float32(flat_x[at + np.uint64({j})]) + offset)", finish=["s_{j} += r1_{j} + r2_{j} + o_{j}"],
        store="rescaled(s_{j} * k_{j} + a_{j}, d_{j}, threshold, low, high)", exact_integers=True)


def _depthwise_source(signature: str, doc: str, lanes: int, block: list[str], value: str, border_value: str,
                      finish: list[str], store: str, exact_integers: bool) -> str:
    """The loops both depthwise kernels share. Templates ({j}: the lane): `block` lines load a
    channel block's constants, `value` is an input lane as an inside sum takes it (`border_value`
    at the border), `finish` ends an inside sum, `store` is what a lane stores. exact_integers: the
    quantized kernel's row sums (s_, r1_, r2_) and tap loop at the border; else one sum in order."""
    taps = [(ky, kx) for ky in range(3) for kx in range(3)]
    lanes_ = range(lanes)

    def each_lane(template: str, indent: str) -> list[str]:
        return [indent + template.format(j=j) for j in lanes_]

    inside = ["                column = np.uint64(left * channels)"]
    for ky, kx in taps:
        total = f"r{ky}_{{j}}" if exact_integers and ky else "s_{j}"
        inside.append(f"                at = row_{ky} + column" + (f" + step_{kx}" if kx else ""))
        inside += each_lane(f"{total} {'=' if total != 's_{j}' and kx == 0 else '+='} {value} * w_{ky}{kx}_{{j}}",
                            "                ")
    inside += [line for template in finish for line in each_lane(template, "                ")]
    if exact_integers:
        border = ["                for ky in range(3):",
                  "                    for kx in range(3):",
                  "                        if 0 <= top + ky * dh < height and 0 <= left + kx * dw < width:",
                  "                            at = np.uint64(((b * height + top + ky * dh) * width + left + kx * dw)"
                  " * channels + c0)",
                  *each_lane(f"s_{{j}} += {border_value} * w[ky, kx, c0 + {{j}}]", "                            ")]
    else:
        border = []
        for ky, kx in taps:
            border.append(f"                if 0 <= top + {ky} * dh < height and 0 <= left + {kx} * dw < width:")
            border.append(f"                    at = np.uint64(((b * height + top + {ky} * dh) * width"
                          f" + left + {kx} * dw) * channels + c0)")
            border += each_lane(f"s_{{j}} += {border_value} * w_{ky}{kx}_{{j}}", "                    ")
    return "\n".join([
        f"def {signature}:",
        f'    """{doc}"""',
        "    n, height, width, channels = x.shape",
        f"    blocks = -(-channels // {lanes})",
        "    out_h, out_w = out.shape[1], out.shape[2]",
        "    flat_x, flat_out = x.reshape(x.size), out.reshape(out.size)",
        "    for task in prange(n * out_h * blocks):",
        "        b = task // (out_h * blocks)",
        "        oy = task // blocks % out_h",
        f"        c0 = min(task % blocks * {lanes}, channels - {lanes})",
        "        top = oy * sh - pad_top",
        "        rows_inside = top >= 0 and top + 2 * dh < height",
        "        row_0 = np.uint64(((b * height + top) * width) * channels + c0) if rows_inside else np.uint64(0)",
        "        row_1 = row_0 + np.uint64(dh * width * channels)",
        "        row_2 = row_1 + np.uint64(dh * width * channels)",
        "        step_1 = np.uint64(dw * channels)",
        "        step_2 = step_1 + step_1",
        *[f"        w_{ky}{kx}_{j} = w[{ky}, {kx}, c0 + {j}]" for ky, kx in taps for j in lanes_],
        *[line for template in block for line in each_lane(template, "        ")],
        "        for ox in range(out_w):",
        "            left = ox * sw - pad_left",
        *each_lane("s_{j} = np.float32(0)", "            "),
        "            if rows_inside and left >= 0 and left + 2 * dw < width:",
        *inside,
        "            else:",
        *border,
        "            at = np.uint64(((b * out_h + oy) * out_w + ox) * channels + c0)",
        *each_lane(f"flat_out[at + np.uint64({{j}})] = {store}", "            "),
        "",
    ])
