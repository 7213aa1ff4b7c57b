"""Tokenizing with the ONNX backend: the same token files as the torch backend, a run of its own (not kept for a torch
run), and missing graphs are one error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codec.config.prepare import PrepareConfig, SplitFractions
from codec.config.tokenize import TokenizeConfig
from codec.formats.export import load_export
from codec.formats.onnx import export_onnx
from codec.formats.onnx_runtime import default_onnx_dir
from codec.tokens.corpus import TokenizeError, run_tokenize, tokenize_shard

pytest.importorskip("onnx", reason="the ONNX exporter needs the onnx package")
pytest.importorskip("onnxruntime", reason="the backend runs onnxruntime")
pytestmark = pytest.mark.usefixtures("single_thread")
PREPARE = PrepareConfig(corpus="unused", num_shards=2, split=SplitFractions(valid=0.2, test=0.2), workers=1)
CFG = TokenizeConfig(workers=1, row_group_rows=4)


def _tokens(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_export):
    folder = tmp_path_factory.mktemp("model")
    path = folder / "tiny.safetensors"
    path.write_bytes(tiny_export.read_bytes())
    export_onnx(load_export(path), default_onnx_dir(path))
    return path


def test_onnx_backend_writes_the_torch_backends_token_files(model, tiny_shards, tmp_path):
    outs = {}
    for backend in ("torch", "onnx"):
        out = outs[backend] = tmp_path / backend
        run_tokenize(model, tiny_shards, CFG, PREPARE, 16000, out, out / "stats.json", out / "sk.csv", backend=backend)
    assert _tokens(outs["onnx"]) == _tokens(outs["torch"]) != {}
    stats = [json.loads((outs[b] / "stats.json").read_text()) for b in ("torch", "onnx")]
    assert stats[0] == stats[1]
    # A part made by the ONNX backend is not taken for the torch run's: the fingerprints differ.
    parts = [json.loads((outs[b] / "parts" / "part-00000.json").read_text()) for b in ("torch", "onnx")]
    assert parts[0]["fingerprint"] != parts[1]["fingerprint"]
    again = tokenize_shard(model, tiny_shards, CFG, PREPARE, 16000, outs["onnx"], 0, backend="torch")
    assert not again.get("kept")


def test_missing_graphs_are_a_tokenize_error(tiny_export, tiny_shards, tmp_path):
    with pytest.raises(TokenizeError, match="no ONNX graphs"):
        tokenize_shard(tiny_export, tiny_shards, CFG, PREPARE, 16000, tmp_path, 0, backend="onnx")
