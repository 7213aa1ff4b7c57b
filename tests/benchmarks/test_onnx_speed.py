"""The ONNX speed and agreement benchmark runs end to end on a tiny model and toy data (its timings are its output,
never asserted here)."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from benchmarks import onnx_speed
from codec.config.export import ExportConfig
from codec.formats.export import export_codec
from tests.codec.conftest import make_tiny_codec, speechlike

pytest.importorskip("onnx", reason="the ONNX exporter needs the onnx package")
pytest.importorskip("onnxruntime", reason="the benchmark runs onnxruntime")


@pytest.fixture
def tiny_export(tmp_path):
    path = tmp_path / "tiny.safetensors"
    export_codec(make_tiny_codec(), path, ExportConfig())
    return path


def test_benchmark_smoke(tmp_path, tiny_export, tiny_shards, capsys):
    corpus = tmp_path / "clips"
    corpus.mkdir()
    for i in range(2):
        sf.write(corpus / f"{i}.wav", speechlike(0.4, 22050, seed=i), 22050)
    out = tmp_path / "onnx_speed.json"
    argv = ["--model", str(tiny_export), "--corpus", str(corpus), "--seconds", "0.6", "--repeats", "1", "--threads=1"]
    onnx_speed.main([*argv, "--shards", str(tiny_shards), "--max-utterances", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    assert {row["system"] for row in result["speed"]} >= {"torch eager", "onnx float32", "onnx int8 decoder"}
    assert all(row["threads"] == 1 for row in result["speed"])
    agreement = result["agreement"]
    assert agreement["utterances"] == 2
    assert agreement["identical_share"]["onnx"] == 1.0  # the tiny model's codes agree exactly
    assert set(agreement["pesq_wb"]) == {"torch", "onnx", "int8"}
    assert "| onnx float32 |" in capsys.readouterr().out
