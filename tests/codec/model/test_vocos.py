"""Vocos decoder: shapes, the iSTFT inverts a "same"-layout STFT, DC held at zero, gradients."""

import dataclasses

import pytest
import torch

from codec.config.convert import ConfigError, from_dict
from codec.config.model import ModelConfig, VocosConfig
from codec.config.quantizer import QuantizerConfig
from codec.model.codec import build_codec
from codec.model.vocos import VocosDecoder, istft_same

SMALL = ModelConfig(
    channels=4,
    latent_dim=16,
    n_residual_layers=1,
    decoder="vocos",
    vocos=VocosConfig(dim=32, intermediate_dim=64, num_layers=2),
)


def same_layout_stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """``[B, F * hop]`` -> ``[B, n_fft // 2 + 1, F]``: frame f centred on samples [f hop, (f + 1) hop)."""
    pad = (n_fft - hop) // 2
    frames = torch.nn.functional.pad(x, (pad, pad)).unfold(-1, n_fft, hop)  # [B, F, n_fft]
    return torch.fft.rfft(frames * torch.hann_window(n_fft, dtype=x.dtype), dim=-1).transpose(1, 2)


@pytest.mark.parametrize("n_fft,hop", [(1280, 320), (64, 16), (48, 16)])
def test_istft_inverts_a_same_layout_stft(n_fft, hop):
    torch.manual_seed(0)
    x = torch.randn(2, 25 * hop, dtype=torch.float64)
    spec = same_layout_stft(x, n_fft, hop)
    assert spec.shape == (2, n_fft // 2 + 1, 25)
    y = istft_same(spec, n_fft, hop, torch.hann_window(n_fft, dtype=torch.float64))
    assert y.shape == (2, 1, 25 * hop)
    torch.testing.assert_close(y[:, 0], x, atol=1e-8, rtol=0)


def test_decoder_shapes_and_gradients():
    torch.manual_seed(0)
    decoder = VocosDecoder(SMALL)
    z = torch.randn(3, 16, 11, requires_grad=True)
    y = decoder(z)
    assert y.shape == (3, 1, 11 * SMALL.hop_length) and y.dtype == torch.float32
    y.square().mean().backward()
    assert z.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in decoder.parameters())


def test_dc_bin_is_held_at_zero():
    torch.manual_seed(0)
    decoder = VocosDecoder(SMALL)
    features = torch.randn(2, 40, 32)
    with torch.no_grad():
        spec = decoder.head.spectrum(features)
        assert torch.equal(spec[:, 0], torch.zeros_like(spec[:, 0])) and spec[:, 1:].abs().min() > 0
        decoder.head.out.bias[0] = 5.0  # the DC log-magnitude: a loud one changes nothing
        loud = decoder.head(features)
        decoder.head.out.bias[0] = -5.0
        assert torch.equal(decoder.head(features), loud)
        decoder.head.out.bias[1] = 5.0  # while the next bin's does
        assert not torch.equal(decoder.head(features), loud)


def test_codec_with_vocos_decoder_round_trips_lengths():
    torch.manual_seed(0)
    codec = build_codec(SMALL, QuantizerConfig(num_levels=2, codebook_size=16), 16000).eval()
    x = 0.1 * torch.randn(1, 1, 16000 - 17)
    out = codec(x)
    assert out.reconstruction.shape == x.shape
    assert torch.equal(codec.decode(codec.encode(x))[..., : x.shape[-1]], out.reconstruction)


def test_config_checks():
    with pytest.raises(ValueError, match="lookahead_frames"):
        dataclasses.replace(SMALL, causal=True, vocos=VocosConfig(lookahead_frames=5))  # n_fft = 4 hops
    with pytest.raises(ValueError, match="multiple of the head.s hop"):
        dataclasses.replace(SMALL, causal=True, vocos=VocosConfig(n_fft=500))
    with pytest.raises(ValueError, match="n_fft"):
        dataclasses.replace(SMALL, vocos=VocosConfig(n_fft=160))
    with pytest.raises(ConfigError, match="kernel_size must be odd"):
        from_dict(ModelConfig, {"decoder": "vocos", "vocos": {"kernel_size": 4}})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(ModelConfig, {"decoder": "vocos", "vocos": {"dims": 4}})


def test_upsampled_head_reads_its_spectra_in_time_order():
    """With head_upsample s, code frame f gives the iSTFT frames f*s .. f*s + s - 1, at hop / s: the output keeps
    its length, and a change to one code frame's features reaches only that frame's spectra."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(SMALL, vocos=dataclasses.replace(SMALL.vocos, head_upsample=4))
    decoder = VocosDecoder(cfg)
    assert decoder.head.hop_length == SMALL.hop_length // 4 and decoder.head.n_fft == SMALL.hop_length
    z = torch.randn(2, 16, 9)
    assert decoder(z).shape == (2, 1, 9 * SMALL.hop_length)
    features = torch.randn(1, 9, 32)
    with torch.no_grad():
        spec = decoder.head.spectrum(features)
        assert spec.shape == (1, decoder.head.n_fft // 2 + 1, 36)
        features[0, 5] += 1.0
        changed = (decoder.head.spectrum(features) != spec).any(dim=1)[0]
    assert changed.nonzero().flatten().tolist() == [20, 21, 22, 23]


def test_upsampled_head_config_checks():
    with pytest.raises(ValueError, match="must divide the hop"):
        dataclasses.replace(SMALL, vocos=VocosConfig(head_upsample=7))
    causal = dataclasses.replace(SMALL, causal=True, vocos=VocosConfig(head_upsample=4, lookahead_frames=4))
    assert VocosDecoder(causal).head.lookahead == 4  # one code frame at the head's hop
    with pytest.raises(ValueError, match="lookahead_frames"):
        dataclasses.replace(SMALL, causal=True, vocos=VocosConfig(head_upsample=4, lookahead_frames=5))
    with pytest.raises(ValueError, match="head_upsample must be >= 1"):
        VocosConfig(head_upsample=0)
