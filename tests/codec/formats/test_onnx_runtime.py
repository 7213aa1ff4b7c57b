"""The onnxruntime backend: chunked encode/decode through the ONNX graphs equals the torch path, the step graphs run
chunk by chunk equal the torch streaming classes, and a missing, foreign or modified folder is one clear error."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from codec.config.export import ExportConfig
from codec.formats.export import export_codec, load_export
from codec.formats.onnx import MANIFEST, export_onnx
from codec.formats.onnx_runtime import (
    OnnxBackendError,
    OnnxCodec,
    OnnxGraphs,
    OnnxStreamingDecoder,
    OnnxStreamingEncoder,
    default_onnx_dir,
)
from codec.model.chunked import decode_codes, encode_stream
from codec.model.streaming import StreamingDecoder, StreamingEncoder
from tests.codec.conftest import make_tiny_codec, speechlike
from tests.codec.model.test_streaming import causal_codec

pytest.importorskip("onnx", reason="the ONNX exporter needs the onnx package")
pytest.importorskip("onnxruntime", reason="the backend runs onnxruntime")
pytestmark = pytest.mark.usefixtures("single_thread")
HOP = 320
# Streaming: ONNX step graphs against codec.model.streaming, of full scale (1.0) and of the output's peak. Float
# rounding where the kernels differ and where the overlap-add is summed in another order; measured under 7.5e-7 of
# full scale (SEANet, peak 0.95) and 2e-6 of the peak (Vocos).
STREAM_BOUND = 1e-4
CHUNKED_BOUND = 1e-5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_export):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"  # a copy: the shared export keeps no graphs
    path.write_bytes(tiny_export.read_bytes())
    folder = default_onnx_dir(path)
    export_onnx(load_export(path), folder, int8=True)
    return load_export(path), folder


def test_default_folder_is_beside_the_export(tmp_path):
    assert default_onnx_dir(tmp_path / "m.safetensors") == tmp_path / "m.onnx"


def test_chunked_codes_and_audio_equal_the_torch_path(tiny):
    exported, folder = tiny
    backend = OnnxCodec(exported, folder, threads=1)
    x = speechlike(2.33)[:, 0]
    pieces = [x[i : i + 5000] for i in range(0, x.shape[0], 5000)]
    with torch.inference_mode():
        expected, n = encode_stream(exported.codec, pieces, 3, chunk_frames=7)
        codes, m = encode_stream(backend, pieces, 3, chunk_frames=7)
        assert n == m == x.shape[0]
        assert torch.equal(codes, expected)
        audio = np.concatenate(list(decode_codes(backend, codes, n, chunk_frames=7)))
        reference = np.concatenate(list(decode_codes(exported.codec, codes, n, chunk_frames=7)))
    assert audio.shape == reference.shape == (n,)
    assert np.abs(audio - reference).max() <= CHUNKED_BOUND


def test_int8_backend_decodes(tiny):
    exported, folder = tiny
    codes = torch.from_numpy(np.random.default_rng(0).integers(0, 32, (1, 4, 20)))
    audio = OnnxCodec(exported, folder, int8=True).decode(codes)
    assert audio.shape == (1, 1, 20 * HOP) and torch.isfinite(audio).all()


def test_missing_folder_is_one_clear_error(tiny, tmp_path):
    exported, _ = tiny
    with pytest.raises(OnnxBackendError) as info:
        OnnxCodec(exported, tmp_path / "nowhere")
    message = str(info.value)
    assert "\n" not in message and "export-onnx" in message and "nowhere" in message


def test_graphs_of_another_model_are_refused(tiny, tmp_path):
    exported, folder = tiny
    other = make_tiny_codec(seed=1)
    export_codec(other, tmp_path / "other.safetensors", ExportConfig())
    with pytest.raises(OnnxBackendError, match="another model"):
        OnnxCodec(load_export(tmp_path / "other.safetensors"), folder)


def test_modified_graph_is_refused(tiny, tmp_path):
    exported, folder = tiny
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with open(copy / "encoder.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(OnnxBackendError, match="sha256"):
        OnnxCodec(exported, copy).encode(torch.zeros(1, 1, HOP))


def test_int8_asked_without_int8_graphs(tiny, tmp_path):
    exported, folder = tiny
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    del manifest["files"]["decoder_int8"]
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(OnnxBackendError, match="int8"):
        OnnxCodec(exported, copy, int8=True)


# ------------------------------------------------------------------------------------------------- streaming

KINDS = ["vocos-head4-lookahead-4", "vocos-head4-lookahead-0", "vocos-lookahead-1", "seanet", "seanet-lstm"]


@pytest.fixture(scope="module")
def causal_exports(tmp_path_factory):
    cache: dict[str, tuple] = {}

    def get(kind: str):
        if kind not in cache:
            folder = tmp_path_factory.mktemp(kind)
            export_codec(causal_codec(kind), folder / "m.safetensors", ExportConfig())
            exported = load_export(folder / "m.safetensors")
            export_onnx(exported, folder / "m.onnx")
            cache[kind] = exported, OnnxGraphs(folder / "m.onnx", exported, threads=1)
        return cache[kind]

    return get


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("frames", [1, 3, 7])
def test_step_graphs_chunk_by_chunk_equal_the_streaming_classes(causal_exports, kind, frames):
    exported, graphs = causal_exports(kind)
    codec = exported.codec
    x = speechlike(1.37)[:, 0]
    torch_encoder, onnx_encoder = StreamingEncoder(codec), OnnxStreamingEncoder(graphs)
    chunks = [x[i : i + frames * HOP] for i in range(0, x.shape[0], frames * HOP)]
    codes = np.concatenate([*(onnx_encoder.encode(c) for c in chunks), onnx_encoder.flush()], axis=1)
    reference = torch.cat([*(torch_encoder.encode(torch.from_numpy(c)) for c in chunks), torch_encoder.flush()], 1)
    assert np.array_equal(codes, reference.numpy())
    assert np.array_equal(codes, codec.encode(torch.from_numpy(x).view(1, 1, -1))[0].numpy())

    torch_decoder, onnx_decoder = StreamingDecoder(codec), OnnxStreamingDecoder(graphs)
    expected, got = [], []
    for start in range(0, codes.shape[1], frames):
        chunk = codes[:, start : start + frames]
        expected.append(torch_decoder.decode(torch.from_numpy(chunk)).numpy())
        got.append(onnx_decoder.decode(chunk))
    expected.append(torch_decoder.flush().numpy())
    got.append(onnx_decoder.flush())
    # Each call gives the samples the torch decoder gives in the same call (the look-ahead held back alike).
    assert [len(g) for g in got] == [len(e) for e in expected]
    expected_audio = np.concatenate(expected)
    peak = min(1.0, np.abs(expected_audio).max())  # the tiny Vocos decoders are quiet: relative to their level too
    assert np.abs(np.concatenate(got) - expected_audio).max() <= STREAM_BOUND * peak
    assert sum(len(g) for g in got) == codes.shape[1] * HOP


def test_fewer_levels_stream_too(causal_exports):
    exported, graphs = causal_exports("vocos-head4-lookahead-4")
    codes = exported.codec.encode(torch.from_numpy(speechlike(0.5)[:, 0]).view(1, 1, -1))[0, :2]
    torch_decoder, onnx_decoder = StreamingDecoder(exported.codec), OnnxStreamingDecoder(graphs)
    expected = torch.cat([torch_decoder.decode(codes), torch_decoder.flush()]).numpy()
    got = np.concatenate([onnx_decoder.decode(codes.numpy()), onnx_decoder.flush()])
    assert np.abs(got - expected).max() <= STREAM_BOUND


def test_int8_step_decoder_runs(tmp_path):
    export_codec(causal_codec("vocos-head4-lookahead-4"), tmp_path / "m.safetensors", ExportConfig())
    exported = load_export(tmp_path / "m.safetensors")
    export_onnx(exported, tmp_path / "m.onnx", int8=True)
    codes = exported.codec.encode(torch.from_numpy(speechlike(0.3)[:, 0]).view(1, 1, -1))[0].numpy()
    decoder = OnnxStreamingDecoder(OnnxGraphs(tmp_path / "m.onnx", exported, threads=1), int8=True)
    audio = np.concatenate([decoder.decode(codes[:, :5]), decoder.decode(codes[:, 5:]), decoder.flush()])
    assert audio.shape == (codes.shape[1] * HOP,) and np.isfinite(audio).all()


def test_step_graphs_need_a_causal_model(tiny):
    exported, folder = tiny
    with pytest.raises(OnnxBackendError, match="decoder_step"):
        OnnxStreamingDecoder(OnnxGraphs(folder, exported))
