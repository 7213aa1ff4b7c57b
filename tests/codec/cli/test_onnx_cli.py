"""`telucodec export-onnx` and `--backend onnx`: the same .tcq bytes as the torch backend, single file and batch,
decoded audio within float rounding, the int8 decoder runs, and missing graphs are one clear error line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from codec.cli.main import main
from codec.formats.onnx_runtime import default_onnx_dir

pytest.importorskip("onnx", reason="the ONNX exporter needs the onnx package")
pytest.importorskip("onnxruntime", reason="the backend runs onnxruntime")
pytestmark = pytest.mark.usefixtures("single_thread")


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model_and_graphs(tmp_path_factory, tiny_export):
    """A copy of the tiny export with its graphs in the default folder beside it."""
    folder = tmp_path_factory.mktemp("model")
    model = folder / "tiny.safetensors"
    model.write_bytes(tiny_export.read_bytes())
    code = main(["export-onnx", str(model), str(default_onnx_dir(model)), "--int8"])
    assert code == 0
    return model, default_onnx_dir(model)


def test_export_onnx_writes_the_graphs_and_manifest(model_and_graphs):
    model, folder = model_and_graphs
    manifest = json.loads((folder / "onnx.json").read_text())
    assert {"encoder.onnx", "decoder.onnx", "decoder.int8.onnx"} <= {p.name for p in folder.iterdir()}
    assert manifest["files"]["decoder_int8"] == "decoder.int8.onnx" and manifest["opset"] >= 17


def test_onnx_backend_writes_the_torch_backends_bitstream(capsys, tmp_path, model_and_graphs, speech_wav):
    model, _ = model_and_graphs
    wav = speech_wav(seconds=2.3, rate=22050, channels=2)
    torch_tcq, onnx_tcq = tmp_path / "t.tcq", tmp_path / "o.tcq"
    common = ["--model", model, "--levels", 3, "--chunk-seconds", 0.5]
    assert _run(capsys, "encode", wav, torch_tcq, *common)[0] == 0
    assert _run(capsys, "encode", wav, onnx_tcq, *common, "--backend", "onnx")[0] == 0
    assert onnx_tcq.read_bytes() == torch_tcq.read_bytes()

    torch_wav, onnx_wav, int8_wav = tmp_path / "t.wav", tmp_path / "o.wav", tmp_path / "i.wav"
    args = ["--model", model, "--subtype", "FLOAT", "--chunk-seconds", 0.5]
    assert _run(capsys, "decode", torch_tcq, torch_wav, *args)[0] == 0
    assert _run(capsys, "decode", torch_tcq, onnx_wav, *args, "--backend", "onnx")[0] == 0
    assert _run(capsys, "decode", torch_tcq, int8_wav, *args, "--backend", "onnx-int8")[0] == 0
    reference, got = sf.read(torch_wav)[0], sf.read(onnx_wav)[0]
    assert got.shape == reference.shape and np.abs(got - reference).max() <= 1e-5
    int8 = sf.read(int8_wav)[0]
    assert int8.shape == reference.shape and np.isfinite(int8).all()


def test_batch_with_the_onnx_backend(capsys, tmp_path, model_and_graphs, speech_wav):
    model, folder = model_and_graphs
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, seconds in enumerate([0.3, 1.1, 0.02]):
        sf.write(clips / f"c{i}.wav", sf.read(speech_wav(f"c{i}.wav", seconds=seconds))[0], 16000)
    assert _run(capsys, "encode", clips, tmp_path / "torch", "--model", model, "--jobs", 2)[0] == 0
    code, out, _ = _run(capsys, "encode", clips, tmp_path / "onnx", "--model", model, "--jobs", 2, "--backend", "onnx")
    assert code == 0 and "3 of 3" in out
    for i in range(3):
        assert (tmp_path / "onnx" / f"c{i}.tcq").read_bytes() == (tmp_path / "torch" / f"c{i}.tcq").read_bytes()
    code, out, _ = _run(
        capsys, "decode", tmp_path / "onnx", tmp_path / "audio", "--model", model, "--backend", "onnx", "--onnx", folder
    )
    assert code == 0 and "3 of 3" in out


def test_missing_graphs_are_one_error_line(capsys, tmp_path, tiny_export, speech_wav):
    wav = speech_wav(seconds=0.5)
    code, out, err = _run(capsys, "encode", wav, tmp_path / "x.tcq", "--model", tiny_export, "--backend", "onnx")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: --backend onnx: no ONNX graphs in ")
    assert "export-onnx" in err and not (tmp_path / "x.tcq").exists()
    code, _, err = _run(capsys, "encode", wav, tmp_path / "x.tcq", "--model", tiny_export, "--onnx", tmp_path / "none")
    assert code == 0  # --onnx alone does not change the backend


def test_int8_asked_of_a_folder_without_it(capsys, tmp_path, tiny_export, speech_wav):
    folder = tmp_path / "plain"
    assert main(["export-onnx", str(tiny_export), str(folder)]) == 0
    capsys.readouterr()
    tcq = tmp_path / "x.tcq"
    assert _run(capsys, "encode", speech_wav(seconds=0.5), tcq, "--model", tiny_export)[0] == 0
    code, _, err = _run(
        capsys, "decode", tcq, tmp_path / "y.wav", "--model", tiny_export, "--backend", "onnx-int8", "--onnx", folder
    )
    assert code == 1 and "int8" in err and err.count("\n") == 1
