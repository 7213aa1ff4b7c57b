import math

import pytest
import torch

from codec.config.model import ModelConfig
from codec.model.seanet import SConv1d, SConvTranspose1d, SEANetDecoder, SEANetEncoder, pad1d


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _conv(c_in: int, c_out: int, k: int) -> int:
    # weight_norm(dim=0): direction v [out, in, k] + magnitude g [out] + bias [out]
    return c_out * c_in * k + 2 * c_out


def _convtr(c_in: int, c_out: int, k: int) -> int:
    # ConvTranspose weight is [in, out, k]; weight_norm(dim=0) puts g on the input axis
    return c_in * c_out * k + c_in + c_out


def _expected_encoder_params(cfg: ModelConfig) -> int:
    ch, total = cfg.channels, _conv(1, cfg.channels, cfg.kernel_size)
    for s in cfg.strides:
        hidden = ch // cfg.compress
        total += cfg.n_residual_layers * (_conv(ch, hidden, cfg.residual_kernel_size) + _conv(hidden, ch, 1))
        total += _conv(ch, 2 * ch, 2 * s)
        ch *= 2
    return total + _conv(ch, cfg.latent_dim, cfg.last_kernel_size)


def _expected_decoder_params(cfg: ModelConfig) -> int:
    ch = cfg.channels * 2 ** len(cfg.strides)
    total = _conv(cfg.latent_dim, ch, cfg.kernel_size)
    for s in reversed(cfg.strides):
        total += _convtr(ch, ch // 2, 2 * s)
        ch //= 2
        hidden = ch // cfg.compress
        total += cfg.n_residual_layers * (_conv(ch, hidden, cfg.residual_kernel_size) + _conv(hidden, ch, 1))
    return total + _conv(ch, 1, cfg.last_kernel_size) + 1  # + the output scale


def test_default_parameter_count_matches_architecture_and_is_small():
    cfg = ModelConfig()
    enc, dec = SEANetEncoder(cfg), SEANetDecoder(cfg)
    assert _n_params(enc) == _expected_encoder_params(cfg)
    assert _n_params(dec) == _expected_decoder_params(cfg)
    assert 1_000_000 <= _n_params(enc) + _n_params(dec) <= 3_000_000  # trains in minutes on 2 CPU cores


def test_lstm_adds_parameters_at_the_bottleneck():
    cfg = ModelConfig(channels=4, latent_dim=8, lstm_layers=1)
    dim = 4 * 2**4
    lstm = 4 * (dim * dim * 2 + 2 * dim)  # four gates: input + hidden weights, two biases
    assert _n_params(SEANetEncoder(cfg)) == _expected_encoder_params(cfg) + lstm
    assert _n_params(SEANetDecoder(cfg)) == _expected_decoder_params(cfg) + lstm


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [1, 319, 320, 321, 1000, 4000])
def test_shapes(length, causal):
    cfg = ModelConfig(channels=4, latent_dim=8, causal=causal, lstm_layers=1 if causal else 0)
    enc, dec = SEANetEncoder(cfg), SEANetDecoder(cfg)
    z = enc(torch.randn(2, 1, length))
    frames = math.ceil(length / cfg.hop_length)
    assert z.shape == (2, 8, frames)
    assert dec(z).shape == (2, 1, frames * cfg.hop_length)


def test_strided_conv_and_transpose_lengths():
    for stride in (2, 4, 5, 8):
        conv = SConv1d(1, 1, 2 * stride, stride=stride)
        convtr = SConvTranspose1d(1, 1, 2 * stride, stride)
        for length in (stride, 3 * stride, 3 * stride + 1):
            out = conv(torch.randn(1, 1, length))
            assert out.shape[-1] == math.ceil(length / stride)
            assert convtr(out).shape[-1] == out.shape[-1] * stride


def test_causal_encoder_does_not_look_ahead():
    cfg = ModelConfig(channels=4, latent_dim=8, causal=True)
    enc = SEANetEncoder(cfg)
    x = torch.randn(1, 1, 3200)
    y = x.clone()
    y[..., 1600:] = torch.randn(1600)
    # Frames 0..4 cover samples < 1600: changing the future must not change them.
    torch.testing.assert_close(enc(x)[..., :5], enc(y)[..., :5])
    assert not torch.allclose(enc(x)[..., 5:], enc(y)[..., 5:])


def test_reflect_pad_on_short_input_matches_zero_extended_reflection():
    x = torch.arange(1.0, 3.0).view(1, 1, 2)  # [1, 2]; reflect pad of 3 is impossible directly
    out = pad1d(x, 3, 3, "reflect")
    assert out.shape[-1] == 2 + 6
    torch.testing.assert_close(out[..., 3:5], x)
    # zero-extended [1, 2, 0, 0] reflected by 3 on the left is [0, 0, 2 | 1, 2 ...]
    torch.testing.assert_close(out[..., :3], torch.tensor([[[0.0, 0.0, 2.0]]]))


def test_output_scale_is_learnable_and_bounds_tanh_output():
    cfg = ModelConfig(channels=4, latent_dim=8, output_scale_init=0.25)
    dec = SEANetDecoder(cfg)
    assert any(p is dec.output_scale for p in dec.parameters())
    assert dec.output_scale.item() == pytest.approx(0.25)
    y = dec(100 * torch.randn(2, 8, 3))
    assert y.abs().max() <= 0.25 + 1e-6
    y.sum().backward()
    assert dec.output_scale.grad is not None and dec.output_scale.grad.abs() > 0


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        ModelConfig(strides=[])
    with pytest.raises(ValueError):
        ModelConfig(output_scale_init=0.0)
    assert ModelConfig().hop_length == 320


def test_default_encoder_latents_carry_the_signal_at_init():
    """Variance-preserving init: the latents' frame-to-frame variation outweighs their constant part.

    With PyTorch's default conv init the default encoder's latents were the biases' constant plus a
    residue (std over frames 0.003 against a mean of 0.05), so seeding and training saw no signal.
    """
    import numpy as np

    torch.manual_seed(0)
    cfg = ModelConfig()
    encoder = SEANetEncoder(cfg)
    t = torch.arange(16000) / 16000
    voiced = sum(torch.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 6))
    x = (0.1 * voiced * (0.5 + 0.5 * torch.sin(2 * np.pi * 4 * t) ** 2)).view(1, 1, -1)
    with torch.no_grad():
        z = encoder(x)
    assert z.std(dim=-1).mean() > z.mean(dim=-1).abs().mean()
