"""The streaming latency benchmark runs on a tiny causal export: one table row per chunk size and side (its
timings are its output, never asserted here)."""

from __future__ import annotations

import pytest

from benchmarks import streaming_latency
from codec.config.export import ExportConfig
from codec.formats.export import export_codec
from tests.benchmarks.conftest import numbers, positive, table
from tests.codec.model.test_streaming import causal_codec


def test_benchmark_smoke(tmp_path, capsys):
    model = tmp_path / "causal.safetensors"
    export_codec(causal_codec("vocos-head4-lookahead-4"), model, ExportConfig())
    streaming_latency.main(["--models", str(model), "--seconds", "0.5", "--chunks-ms", "20", "80"])
    rows = table(capsys.readouterr().out)
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("causal.safetensors", chunk, side) for chunk in ("20 ms", "80 ms") for side in ("encode", "decode")
    ]
    assert all(r[1] == "40 ms (20 frame + 20 look-ahead)" for r in rows)  # hop 320 at 16 kHz, 4 look-ahead frames
    assert all(len(r) == 8 and positive(numbers(" ".join(r[4:]))) for r in rows)


def test_a_chunk_that_is_no_whole_number_of_frames_is_refused(tmp_path):
    model = tmp_path / "causal.safetensors"
    export_codec(causal_codec("seanet"), model, ExportConfig())
    with pytest.raises(SystemExit, match="30 ms is no multiple of the 20 ms frame"):
        streaming_latency.main(["--models", str(model), "--seconds", "0.2", "--chunks-ms", "30"])
