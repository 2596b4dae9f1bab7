"""npdeeplab bench: every engine timed in one process, ratios against LiteRT, the per-op table."""

from __future__ import annotations

import json

import pytest

from npdeeplab.cli import main
from npdeeplab.tools.bench import NO_DELEGATES, REFERENCE, benchmark

NUMBA, NUMPY = "npdeeplab, Numba", "npdeeplab, NumPy"


@pytest.fixture(scope="module")
def result(seed_model_path, litert):
    return benchmark(seed_model_path, runs=2, threads=2, warmup=1)


def test_every_engine_is_timed_with_ratios(result):
    assert list(result.medians_ms) == [REFERENCE, NO_DELEGATES, NUMBA, NUMPY]
    assert all(ms > 0 for ms in result.medians_ms.values())
    assert result.ratio(REFERENCE, REFERENCE) == 1.0
    assert result.ratio(NUMBA, REFERENCE) == result.medians_ms[NUMBA] / result.medians_ms[REFERENCE]


def test_per_op_times_cover_every_op_of_both_backends(result):
    for engine in (NUMBA, NUMPY):
        rows = result.op_times_ms[engine]
        assert [index for index, _, _ in rows] == list(range(70))
        assert rows[66][1] == "CONV_2D" and all(ms > 0 for _, _, ms in rows)
    assert result.op_macs[66] == 33 * 33 * 512 * 256  # 1x1 conv, 512 -> 256 channels at 33x33


def test_text_table(result):
    lines = result.to_text(top=3).splitlines()
    assert lines[0].startswith("npdeeplab bench deeplabv3_257_mv_gpu.tflite: median of 2 interleaved runs, 2 thread(s)")
    assert lines[2].split() == "engine median ms vs LiteRT + XNNPACK vs LiteRT, no delegates".split()
    no_delegates = f"{result.ratio(REFERENCE, NO_DELEGATES):.2f}x"
    assert lines[3].startswith(REFERENCE) and lines[3].split()[-2:] == ["1.00x", no_delegates]
    table = lines[lines.index(f"top ops by time, {NUMBA}:") + 1 :][:4]
    assert all(line.startswith("  op ") for line in table[:3]) and table[3].startswith("  by kind (ms): ")
    assert any("GMAC/s" in line for line in table[:3])  # at least one convolution among the slowest ops
    assert lines[-1].startswith("peak RSS of this process: ")


def test_cli_json(seed_model_path, litert, capsys):
    assert main(["bench", str(seed_model_path), "--runs", "1", "--threads", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runs"] == 1 and data["threads"] == 1
    assert set(data["medians_ms"]) == {REFERENCE, NO_DELEGATES, NUMBA, NUMPY}


@pytest.mark.parametrize("option", ["--runs", "--threads", "--top"])
def test_cli_refuses_counts_below_one(seed_model_path, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", str(seed_model_path), option, "0"])
    assert exit_info.value.code == 2
    assert f"argument {option}: must be at least 1, got 0" in capsys.readouterr().err
