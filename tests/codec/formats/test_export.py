"""The portable export: content hash, code distributions, safetensors-only loading, tampering."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from codec.formats.bitstream import MAX_SYMBOL_PROBABILITY
from codec.formats.export import (
    PROBABILITIES_KEY,
    ExportConfig,
    ExportError,
    code_distributions,
    content_hash,
    export_codec,
    load_export,
)
from codec.formats.weights import save_codec_weights
from tests.codec.conftest import speechlike

pytestmark = pytest.mark.usefixtures("single_thread")


def _metadata(path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


def test_export_loads_back_the_same_codec(tiny_codec, tiny_export):
    loaded = load_export(tiny_export)
    assert not loaded.codec.training
    assert loaded.codec.config == tiny_codec.config
    for name, tensor in tiny_codec.state_dict().items():
        assert torch.equal(loaded.codec.state_dict()[name], tensor), name
    x = 0.3 * torch.randn(1, 1, 3200)
    assert torch.equal(loaded.codec.encode(x, 4), tiny_codec.encode(x, 4))
    meta = _metadata(tiny_export)
    assert meta["format"] == "telucodec-export" and meta["model_id"] == loaded.model_id
    assert json.loads(meta["config"]) == tiny_codec.config
    assert loaded.model_id_bytes == bytes.fromhex(loaded.model_id)[:16]


def test_hash_is_stable_and_sensitive(tiny_codec, tmp_path):
    first = export_codec(tiny_codec, tmp_path / "a.safetensors", ExportConfig())
    again = export_codec(copy.deepcopy(tiny_codec), tmp_path / "b.safetensors", ExportConfig())
    assert first.model_id == again.model_id == load_export(tmp_path / "b.safetensors").model_id

    changed = copy.deepcopy(tiny_codec)
    with torch.no_grad():
        changed.decoder.output_scale.add_(1e-6)
    assert export_codec(changed, tmp_path / "c.safetensors", ExportConfig()).model_id != first.model_id
    other_mix = export_codec(tiny_codec, tmp_path / "d.safetensors", ExportConfig(uniform_mix=0.02))
    assert other_mix.model_id != first.model_id  # the distributions are part of what a bitstream depends on

    tensors = {"w": torch.ones(2, 3)}
    assert content_hash(tensors, {"a": 1}) != content_hash(tensors, {"a": 2})
    assert content_hash(tensors, {}) != content_hash({"w": torch.ones(3, 2)}, {})  # shape counts
    assert content_hash(tensors, {}) != content_hash({"w": torch.ones(2, 3, dtype=torch.float64)}, {})
    assert content_hash(tensors, {}) != content_hash({"v": torch.ones(2, 3)}, {})


def test_code_distributions_follow_usage_and_stay_coder_safe():
    usage = torch.tensor([[10.0, 5.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1e6, 0.0, 0.0, 0.0]])
    p = code_distributions(usage, uniform_mix=0.01).numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert (p > 0).all() and p.max() <= MAX_SYMBOL_PROBABILITY + 1e-12
    assert p[0, 0] > p[0, 1] > p[0, 2] > p[0, 3]
    np.testing.assert_allclose(p[1], 0.25)  # no usage information: uniform
    assert p[2, 0] == pytest.approx(MAX_SYMBOL_PROBABILITY)  # one dominant code: capped
    np.testing.assert_allclose(p[2, 1:], p[2, 1])


def test_export_distributions_come_from_cluster_usage(tiny_codec, tmp_path):
    codec = copy.deepcopy(tiny_codec)
    book = codec.quantizer.codebooks[1]
    usage = torch.linspace(1.0, 32.0, 32)
    book.set_codebook(book.embedding.clone(), usage)  # same entries, skewed usage
    export_codec(codec, tmp_path / "m.safetensors", ExportConfig(uniform_mix=0.01))
    p = load_export(tmp_path / "m.safetensors").probabilities
    expected = 0.99 * usage.double() / usage.sum() + 0.01 / 32
    np.testing.assert_allclose(p[1], expected.numpy(), rtol=1e-9)


def test_tampered_and_foreign_files_are_rejected(tiny_codec, tiny_export, tmp_path):
    tensors = load_file(str(tiny_export))
    meta = _metadata(tiny_export)
    tensors["decoder.output_scale"] = tensors["decoder.output_scale"] + 1.0
    save_file(tensors, str(tmp_path / "tampered.safetensors"), metadata=meta)
    with pytest.raises(ExportError, match="content hash"):
        load_export(tmp_path / "tampered.safetensors")

    save_file(load_file(str(tiny_export)), str(tmp_path / "v9.safetensors"), metadata={**meta, "format_version": "9"})
    with pytest.raises(ExportError, match="version"):
        load_export(tmp_path / "v9.safetensors")

    save_codec_weights(tmp_path / "train.safetensors", tiny_codec.state_dict(), tiny_codec.config)
    with pytest.raises(ExportError, match="not a TeluCodec export"):
        load_export(tmp_path / "train.safetensors")

    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ExportError, match="not a readable safetensors"):
        load_export(tmp_path / "junk.safetensors")
    with pytest.raises(ExportError, match="no such"):
        load_export(tmp_path / "missing.safetensors")


def test_distributions_that_break_the_coder_rules_are_rejected(tiny_export, tmp_path):
    tensors = load_file(str(tiny_export))
    meta = _metadata(tiny_export)
    config = json.loads(meta["config"])
    p = tensors[PROBABILITIES_KEY].clone()
    p[0] = 0.0
    p[0, 0] = 1.0  # one certain code: a decoder could be asked to expand without bound
    tensors[PROBABILITIES_KEY] = p
    save_file(tensors, str(tmp_path / "p.safetensors"), metadata={**meta, "model_id": content_hash(tensors, config)})
    with pytest.raises(ExportError, match="positive|exceeds"):
        load_export(tmp_path / "p.safetensors")


@pytest.mark.parametrize(
    "change, builds",
    [
        ({"model": {"channels": 2000}}, ["meta"]),  # shapes compared on the meta device: no memory
        ({"model": {"lstm_layers": 10**9}}, []),  # more layers than tensors: refused before even that
        ({"quantizer": {"num_levels": 4096}}, []),
    ],
    ids=["channels", "layers", "levels"],
)
def test_a_crafted_config_asking_for_a_huge_model_is_refused_before_anything_is_built(
    tiny_export, tmp_path, monkeypatch, change, builds
):
    # A consistent file (its model_id recomputed) whose config asks for far more than its tensors hold.
    tensors, meta = load_file(str(tiny_export)), _metadata(tiny_export)
    config = json.loads(meta["config"])
    for section, values in change.items():
        config[section].update(values)
    meta.update(config=json.dumps(config, sort_keys=True), model_id=content_hash(tensors, config))
    crafted = tmp_path / "crafted.safetensors"
    save_file(tensors, str(crafted), metadata=meta)

    import codec.model.codec as model_module

    built_on = []
    real = model_module.build_codec
    monkeypatch.setattr(
        model_module, "build_codec", lambda *a, **k: built_on.append(str(torch.get_default_device())) or real(*a, **k)
    )
    with pytest.raises(ExportError, match="do not fit"):
        load_export(crafted)
    assert built_on == builds  # every model built so far was shapes only


def test_a_float16_export_is_half_the_size_and_decodes_like_the_float32_one(tiny_codec, tmp_path):
    full = export_codec(tiny_codec, tmp_path / "f32.safetensors", ExportConfig())
    half = export_codec(tiny_codec, tmp_path / "f16.safetensors", ExportConfig(dtype="float16"))
    assert half.file_bytes < 0.6 * full.file_bytes and half.model_id != full.model_id
    loaded = load_export(half.path)
    assert all(p.dtype == torch.float32 for p in loaded.codec.parameters())  # computes in float32
    np.testing.assert_allclose(loaded.probabilities, load_export(full.path).probabilities)
    x = torch.from_numpy(speechlike(0.5)[:, 0]).view(1, 1, -1)
    with torch.no_grad():
        codes, rounded = tiny_codec.encode(x), loaded.codec.encode(x)
        a, b = tiny_codec.decode(codes), loaded.codec.decode(codes)  # the same codes: only the weights' rounding
    assert (codes == rounded).float().mean() > 0.9  # float16 entries move a few nearest-entry choices
    assert (a - b).abs().max() < 0.01 * a.abs().max()
