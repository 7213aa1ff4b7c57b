"""ONNX export: the graphs give the torch codec's codes and audio (non-causal and causal layouts), the pieces they are
made of (inverse-DFT basis, gather reflect padding, folded weight norm) equal torch's, and onnx.json describes them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from codec.config.export import ExportConfig
from codec.config.model import VocosConfig
from codec.formats.export import export_codec, load_export
from codec.formats.onnx import MANIFEST, export_onnx, folded, irfft_basis, reflect_pad
from codec.model.codec import build_codec
from codec.model.seanet import pad1d
from tests.codec.conftest import TINY_MODEL, TINY_QUANTIZER, speechlike
from tests.codec.model.test_streaming import causal_codec

pytest.importorskip("onnx", reason="the ONNX exporter needs the onnx package")
ort = pytest.importorskip("onnxruntime", reason="running the graphs needs onnxruntime")
pytestmark = pytest.mark.usefixtures("single_thread")
BOUND = 1e-5  # decoded audio, of full scale: float rounding of other kernels (measured under 1e-6)
LENGTHS = [0.02, 0.06, 0.08, 1.37]  # 1 and 3 frames (shorter than the last convolution's reflect pad), 4, many


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, tiny_export):
    folder = tmp_path_factory.mktemp("onnx")
    export_onnx(load_export(tiny_export), folder, int8=True)
    return folder


def _encode(session, x: np.ndarray, hop: int) -> np.ndarray:
    padded = np.pad(x, (0, (-x.shape[0]) % hop)).reshape(1, 1, -1)
    return session.run(None, {"audio": padded})[0]


def _check_graphs(codec, folder):
    enc, dec = _session(folder / "encoder.onnx"), _session(folder / "decoder.onnx")
    for seconds in LENGTHS:
        x = speechlike(seconds)[:, 0]
        reference = codec.encode(torch.from_numpy(x).view(1, 1, -1))[0]
        codes = _encode(enc, x, codec.hop_length)
        assert codes.dtype == np.int64
        assert np.array_equal(codes, reference.numpy()), f"{seconds} s"
        for n in range(1, codec.num_levels + 1):
            audio = dec.run(None, {"codes": codes[:n]})[0]
            expected = codec.decode(reference[None, :n]).numpy()
            assert audio.shape == expected.shape == (1, 1, codes.shape[1] * codec.hop_length)
            assert np.abs(audio - expected).max() <= BOUND, f"{seconds} s, {n} levels"


def test_graphs_give_the_codes_and_audio_of_the_torch_codec(tiny_export, tiny_onnx):
    _check_graphs(load_export(tiny_export).codec, tiny_onnx)


@pytest.mark.parametrize("upsample", [1, 4])
def test_vocos_decoder_with_the_same_layout_istft(tmp_path, upsample):
    """The shipped codec's layout (non-causal Vocos, head_upsample 4): the iSTFT as an inverse-DFT matrix product and
    a transposed-convolution overlap-add, no DFT operator."""
    torch.manual_seed(0)
    vocos = VocosConfig(dim=16, intermediate_dim=32, num_layers=2, head_upsample=upsample)
    codec = build_codec(replace(TINY_MODEL, decoder="vocos", vocos=vocos), TINY_QUANTIZER, 16000)
    codec.train()
    codec(0.3 * torch.randn(2, 1, 16000))  # seeds the codebooks
    export_codec(codec.eval(), tmp_path / "m.safetensors", ExportConfig())
    exported = load_export(tmp_path / "m.safetensors")
    export_onnx(exported, tmp_path / "onnx")
    _check_graphs(exported.codec, tmp_path / "onnx")
    import onnx

    ops = {node.op_type for node in onnx.load(str(tmp_path / "onnx" / "decoder.onnx")).graph.node}
    assert {"MatMul", "ConvTranspose"} <= ops and not any("DFT" in op for op in ops)


@pytest.mark.parametrize("kind", ["seanet", "seanet-lstm", "vocos-lookahead-1", "vocos-head4-lookahead-4"])
def test_causal_layouts_export_too(tmp_path, kind):
    codec = causal_codec(kind)
    export_codec(codec, tmp_path / "m.safetensors", ExportConfig())
    exported = load_export(tmp_path / "m.safetensors")
    info = export_onnx(exported, tmp_path / "onnx")
    assert set(info.files) == {"encoder", "decoder", "encoder_step", "decoder_step"}
    _check_graphs(exported.codec, tmp_path / "onnx")


def test_manifest_describes_the_export(tiny_export, tiny_onnx):
    exported = load_export(tiny_export)
    manifest = json.loads((tiny_onnx / MANIFEST).read_text())
    codec = exported.codec
    assert manifest["model_id"] == exported.model_id
    assert (manifest["sample_rate"], manifest["hop_length"], manifest["num_levels"], manifest["codebook_size"]) == (
        codec.sample_rate,
        codec.hop_length,
        codec.num_levels,
        int(codec.quantizer.codebook_size),
    )
    assert manifest["opset"] >= 17 and manifest["causal"] is False and manifest["streaming"] == {}
    assert set(manifest["files"]) == {"encoder", "decoder", "decoder_int8"}
    for name in manifest["files"].values():
        assert hashlib.sha256((tiny_onnx / name).read_bytes()).hexdigest() == manifest["sha256"][name]
    import onnx

    model = onnx.load(str(tiny_onnx / "decoder.onnx"))
    assert model.opset_import[0].version >= 17
    props = {p.key: p.value for p in model.metadata_props}
    assert props["model_id"] == exported.model_id and props["graph"] == "decoder"
    assert not any("DFT" in node.op_type for node in model.graph.node)


def test_int8_decoder_loads_and_runs(tiny_export, tiny_onnx):
    codec = load_export(tiny_export).codec
    codes = codec.encode(torch.from_numpy(speechlike(0.5)[:, 0]).view(1, 1, -1))[0].numpy()
    audio = _session(tiny_onnx / "decoder.int8.onnx").run(None, {"codes": codes})[0]
    assert audio.shape == (1, 1, codes.shape[1] * codec.hop_length) and np.isfinite(audio).all()
    import onnx

    ops = {node.op_type for node in onnx.load(str(tiny_onnx / "decoder.int8.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}


def test_weight_norm_is_folded_and_the_original_untouched(tiny_codec):
    x = torch.from_numpy(speechlike(0.3)[:, 0]).view(1, 1, -1)
    before = tiny_codec.encode(x)
    plain = folded(tiny_codec)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in plain.modules())
    assert torch.equal(plain.encode(x), before)
    assert torch.equal(tiny_codec.encode(x), before)  # the copy shares no parametrised class with the original
    assert any(torch.nn.utils.parametrize.is_parametrized(m) for m in tiny_codec.modules())


@pytest.mark.parametrize("n_fft", [16, 320, 17])
def test_inverse_dft_basis_equals_irfft(n_fft):
    torch.manual_seed(0)
    bins = n_fft // 2 + 1
    spec = torch.complex(torch.randn(2, bins, 5), torch.randn(2, bins, 5))
    window = torch.hann_window(n_fft)
    expected = torch.fft.irfft(spec, n_fft, dim=1) * window[None, :, None]
    got = irfft_basis(n_fft, window) @ torch.cat([spec.real, spec.imag], dim=1)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()


@pytest.mark.parametrize("length", [1, 2, 3, 4, 9])
@pytest.mark.parametrize(("left", "right"), [(3, 3), (4, 0), (2, 1), (0, 0)])
def test_gather_reflect_padding_equals_pad1d(length, left, right):
    x = torch.randn(1, 2, length)
    assert torch.equal(reflect_pad(x, left, right), pad1d(x, left, right, "reflect"))
