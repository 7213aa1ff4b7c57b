import json
import math

import pytest
import torch

from codec.config.loss import LossConfig
from codec.config.model import ModelConfig
from codec.config.quantizer import QuantizerConfig
from codec.losses.codec_loss import CodecLoss
from codec.model.codec import Codec, build_codec, codec_from_config

SR = 16000
TINY_MODEL = ModelConfig(channels=4, latent_dim=16, n_residual_layers=1)
TINY_VQ = QuantizerConfig(num_levels=4, codebook_size=32, dropout_min_levels=1)


def _tiny_codec(seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    return build_codec(TINY_MODEL, TINY_VQ, SR)


def _speechy(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Harmonic tones with random pitch and a bit of noise, amplitude ~0.5."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / SR
    f0 = 100 + 150 * torch.rand(batch, 1, 1, generator=g)
    x = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 5))
    return 0.25 * x + 0.01 * torch.randn(batch, 1, length, generator=g)


def test_default_bitrate_frame_rate_and_hop():
    codec = build_codec(ModelConfig(), QuantizerConfig(), SR)
    assert codec.hop_length == 320
    assert codec.frame_rate == 50.0
    assert codec.bitrate_kbps() == pytest.approx(6.0)  # 12 levels x 10 bits x 50 frames/s
    assert codec.bitrate_kbps(3) == pytest.approx(1.5)
    assert build_codec(ModelConfig(), QuantizerConfig(), 24000).bitrate_kbps() == pytest.approx(9.0)


@pytest.mark.parametrize("length", [1, 319, 320, 1000, 3201])
def test_forward_shapes(length):
    codec = _tiny_codec()
    x = _speechy(2, length)
    out = codec(x, n_q=3)
    frames = math.ceil(length / codec.hop_length)
    assert out.reconstruction.shape == x.shape
    assert out.codes.shape == (2, 3, frames) and out.codes.dtype == torch.int64
    assert out.commitment_loss.dim() == 0
    assert out.stats.n_q == 3 and out.stats.bitrate_kbps == pytest.approx(codec.bitrate_kbps(3))
    codec.eval()
    assert codec.encode(x, 2).shape == (2, 2, frames)
    assert codec.decode(codec.encode(x)).shape == (2, 1, frames * codec.hop_length)


def test_eval_forward_equals_decode_of_encode():
    codec = _tiny_codec()
    x = _speechy(2, 2000)
    codec.train()
    codec(x)  # seeds the codebooks from a batch
    codec.eval()
    with torch.no_grad():
        out = codec(x, n_q=3)
    torch.testing.assert_close(out.codes, codec.encode(x, 3))
    torch.testing.assert_close(out.reconstruction, codec.decode(out.codes)[..., :2000])


def test_input_is_clipped_to_unit_range():
    codec = _tiny_codec()
    codec.train()
    codec(_speechy(2, 1600))
    codec.eval()
    x = 3.0 * _speechy(2, 1600)
    assert x.abs().max() > 1.0
    with torch.no_grad():
        torch.testing.assert_close(codec(x).reconstruction, codec(x.clamp(-1, 1)).reconstruction)
    torch.testing.assert_close(codec.encode(x), codec.encode(x.clamp(-1, 1)))


def test_rebuild_from_config_dict_gives_same_outputs():
    codec = _tiny_codec(seed=1)
    codec.train()
    codec(_speechy(2, 1600))  # seeded codebooks are part of the state
    codec.eval()
    config = json.loads(json.dumps(codec.config))  # survives a JSON checkpoint header
    torch.manual_seed(123)  # a different init: only the state dict may make them equal
    rebuilt = codec_from_config(config)
    rebuilt.load_state_dict(codec.state_dict())
    rebuilt.eval()
    x = _speechy(2, 1600, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x).reconstruction, codec(x).reconstruction)
    assert rebuilt.config == codec.config and rebuilt.bitrate_kbps() == codec.bitrate_kbps()
    with pytest.raises(ValueError):
        codec_from_config({**config, "extra": 1})


def test_rejects_non_mono_input():
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        _tiny_codec()(torch.zeros(2, 2, 320))


def test_a_few_training_steps_lower_the_reconstruction_loss():
    codec = _tiny_codec()
    codec.train()
    loss_fn = CodecLoss(LossConfig(stft_fft_sizes=[256, 512], mel_fft_sizes=[256, 512], mel_n_mels=32), SR)
    opt = torch.optim.Adam(codec.parameters(), lr=3e-3)
    x = _speechy(4, 3200)

    def reconstruction_loss() -> float:
        codec.eval()
        with torch.no_grad():
            y = codec(x).reconstruction
            value = loss_fn.generator_loss(x, y, torch.tensor(0.0)).total.item()
        codec.train()
        return value

    codec(x)  # seed the codebooks before measuring
    before = reconstruction_loss()
    for step in range(25):
        out = codec(x)
        loss = loss_fn.generator_loss(x, out.reconstruction, out.commitment_loss, step=step).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = reconstruction_loss()
    assert after < 0.8 * before, (before, after)


def test_bf16_autocast_forward_and_backward():
    torch.manual_seed(0)
    codec = build_codec(ModelConfig(channels=4, latent_dim=16, n_residual_layers=1, lstm_layers=1), TINY_VQ, SR)
    loss_fn = CodecLoss(LossConfig(stft_fft_sizes=[256], mel_fft_sizes=[256], mel_n_mels=16), SR)
    x = _speechy(2, 1600)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = codec(x)
        loss = loss_fn.generator_loss(x, out.reconstruction, out.commitment_loss).total
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in codec.encoder.parameters() if p.grad is not None)
    assert codec.decoder.output_scale.grad is not None
