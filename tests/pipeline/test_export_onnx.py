"""`pipeline.export --onnx DIR`: the export and its ONNX graphs (those `telucodec export-onnx` writes) in one run."""

from __future__ import annotations

import json
import os

import pytest

from codec.formats.export import load_export
from codec.formats.weights import save_codec_weights
from pipeline.export import main as export_main
from tests.codec.conftest import make_tiny_codec

pytest.importorskip("onnx", reason="the ONNX exporter needs the onnx package")


def test_export_writes_onnx_graphs_when_asked(tmp_path, repo_root, capsys):
    codec = make_tiny_codec()
    save_codec_weights(tmp_path / "codec.safetensors", codec.state_dict(), codec.config, {"stage": "train"})
    out, graphs = tmp_path / "telucodec.safetensors", tmp_path / "telucodec.onnx"
    params = os.path.join(repo_root, "params.yaml")
    argv = ["--model", str(tmp_path / "codec.safetensors"), "--out", str(out), "--params", params]
    export_main([*argv, "--onnx", str(graphs), "--onnx-int8"])
    manifest = json.loads((graphs / "onnx.json").read_text())
    assert manifest["model_id"] == load_export(out).model_id
    assert set(manifest["files"]) == {"encoder", "decoder", "decoder_int8"}
    assert "ONNX graphs in" in capsys.readouterr().out
