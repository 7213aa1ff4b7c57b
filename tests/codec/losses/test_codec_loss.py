import math

import pytest
import torch

from codec.config.loss import DiscriminatorConfig, LossConfig
from codec.dsp.mel import stft
from codec.losses.codec_loss import (
    CodecLoss,
    CompressedSpectrumLoss,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    combine_generator_losses,
    discriminator_adversarial_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    waveform_cosine_loss,
)
from codec.losses.discriminator import Discriminator

SR = 16000


def _noise(seed=0, batch=2, length=4000):
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(batch, 1, length, generator=g)


def _small_cfg(**kw):
    disc = DiscriminatorConfig(channels=4, fft_sizes=[256, 128])
    return LossConfig(stft_fft_sizes=[256, 512], mel_fft_sizes=[256, 512], mel_n_mels=32, discriminator=disc, **kw)


def test_identical_signals_give_zero_reconstruction_losses():
    x = _noise()
    out = CodecLoss(_small_cfg(), SR).generator_loss(x, x.clone(), torch.tensor(0.0))
    for name in ("waveform_l1", "waveform_cosine", "spectral_convergence", "log_magnitude", "mel"):
        assert out.breakdown[name].item() == pytest.approx(0.0, abs=1e-6), name
    assert out.total.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("gain", [0.5, 2.0])
def test_known_gain(gain):
    # White noise has every STFT bin far above the log floor: logs differ by exactly ln(gain).
    x = _noise()
    y = gain * x
    stft = MultiResolutionSTFTLoss([256, 512])(y, x)
    assert stft.log_magnitude.item() == pytest.approx(abs(math.log(gain)), rel=1e-4)
    assert stft.spectral_convergence.item() == pytest.approx(abs(gain - 1.0), rel=1e-4)
    assert MultiScaleMelLoss(SR, [256, 512], 32)(y, x).item() == pytest.approx(abs(math.log(gain)), rel=1e-3)
    out = CodecLoss(_small_cfg(), SR).generator_loss(x, y, torch.tensor(0.0))
    assert out.breakdown["waveform_l1"].item() == pytest.approx(abs(gain - 1.0) * x.abs().mean().item(), rel=1e-5)


def test_waveform_cosine_on_known_signals():
    t = torch.arange(1600) / SR
    sine = torch.sin(2 * math.pi * 250 * t).view(1, 1, -1)  # 25 whole periods
    cosine = torch.cos(2 * math.pi * 250 * t).view(1, 1, -1)
    assert waveform_cosine_loss(3.0 * sine + 0.2, sine).item() == pytest.approx(0.0, abs=1e-6)  # gain and DC ignored
    assert waveform_cosine_loss(-sine, sine).item() == pytest.approx(2.0, abs=1e-6)
    assert waveform_cosine_loss(cosine, sine).item() == pytest.approx(1.0, abs=1e-4)  # 90 degrees out of phase
    # averaged over examples: one aligned, one inverted
    both = waveform_cosine_loss(torch.cat([sine, -sine]), torch.cat([sine, sine]))
    assert both.item() == pytest.approx(1.0, abs=1e-6)


def test_waveform_cosine_turns_the_output_where_l1_shrinks_it():
    # Early in training the output is uncorrelated with the target. L1's gradient then points along
    # the output itself (a descent step makes it quieter); the cosine's gradient is orthogonal to it
    # (a step changes its direction, not its level) and has a component towards the target.
    x = _noise(0)
    y = _noise(1).requires_grad_(True)
    (l1_grad,) = torch.autograd.grad(torch.nn.functional.l1_loss(y, x), y)
    (cos_grad,) = torch.autograd.grad(waveform_cosine_loss(y, x), y)
    yc = y.detach()
    assert (l1_grad * yc).sum() > 0.5 * l1_grad.norm() * yc.norm()
    assert abs((cos_grad * (yc - yc.mean(-1, keepdim=True))).sum()) < 1e-4 * cos_grad.norm() * yc.norm()
    assert (-cos_grad * x).sum() > 0  # descending it correlates the output with the target
    assert waveform_cosine_loss(y.detach() - 0.1 * cos_grad / cos_grad.norm() * yc.norm(), x) < waveform_cosine_loss(
        y.detach(), x
    )


def test_spectral_convergence_is_scale_invariant_and_asymmetric():
    loss = MultiResolutionSTFTLoss([256])
    x, y = _noise(0), _noise(1)
    base = loss(y, x).spectral_convergence
    torch.testing.assert_close(loss(7.0 * y, 7.0 * x).spectral_convergence, base, rtol=1e-4, atol=0)
    # normalised by the target: a silent reconstruction always scores exactly 1
    assert loss(torch.zeros_like(x), x).spectral_convergence.item() == pytest.approx(1.0, abs=1e-4)
    assert loss(x, 0.5 * x).spectral_convergence.item() == pytest.approx(1.0, rel=1e-4)


def test_weights_scale_terms_and_commitment_passes_through():
    terms = {"waveform_l1": torch.tensor(2.0), "mel": torch.tensor(3.0), "commitment": torch.tensor(0.5)}
    out = combine_generator_losses(terms, LossConfig(waveform_l1_weight=0.1, mel_weight=10.0))
    assert out.total.item() == pytest.approx(0.1 * 2.0 + 10.0 * 3.0 + 0.5)
    assert out.breakdown["mel"].item() == 3.0 and out.breakdown["total"].item() == pytest.approx(30.7)
    with pytest.raises(ValueError):
        combine_generator_losses({"typo": torch.tensor(1.0)}, LossConfig())


def test_adversarial_losses_on_known_logits():
    real = [torch.tensor([2.0, 0.5])]
    fake = [torch.tensor([-2.0, 0.5])]
    # hinge D: mean(relu(1 - [2, .5])) + mean(relu(1 + [-2, .5])) = 0.25 + 0.75
    assert discriminator_adversarial_loss(real, fake, "hinge").item() == pytest.approx(1.0)
    assert generator_adversarial_loss(fake, "hinge").item() == pytest.approx((3.0 + 0.5) / 2)
    # lsgan D: mean([1, .25]) + mean([4, .25]); G: mean([9, .25])
    assert discriminator_adversarial_loss(real, fake, "lsgan").item() == pytest.approx(0.625 + 2.125)
    assert generator_adversarial_loss(fake, "lsgan").item() == pytest.approx(4.625)
    # averaged over sub-discriminators
    two = discriminator_adversarial_loss(real + [torch.ones(3)], fake + [-torch.ones(3)], "hinge")
    assert two.item() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        generator_adversarial_loss(fake, "wasserstein")


def test_feature_matching():
    real = [[torch.tensor([1.0, -3.0]), torch.tensor([2.0])]]
    assert feature_matching_loss(real, [[t.clone() for t in real[0]]]).item() == 0.0
    fake = [[torch.tensor([2.0, -3.0]), torch.tensor([1.0])]]
    # layer 1: mean|diff| 0.5 / mean|real| 2 = 0.25 ; layer 2: 1 / 2 = 0.5
    assert feature_matching_loss(real, fake).item() == pytest.approx(0.375)


def test_adversarial_terms_start_at_the_configured_step():
    cfg = _small_cfg(adversarial_start_step=5)
    loss = CodecLoss(cfg, SR)
    disc = Discriminator(cfg.discriminator)
    x = _noise()
    y = (0.9 * x).requires_grad_()
    before = loss.generator_loss(x, y, torch.tensor(0.0), step=4, discriminator=disc)
    assert "adversarial" not in before.breakdown
    after = loss.generator_loss(x, y, torch.tensor(0.0), step=5, discriminator=disc)
    assert {"adversarial", "feature_matching"} <= set(after.breakdown)
    expected = (
        before.total
        + cfg.adversarial_weight * after.breakdown["adversarial"]
        + cfg.feature_matching_weight * after.breakdown["feature_matching"]
    )
    assert after.total.item() == pytest.approx(expected.item(), rel=1e-5)
    after.total.backward()
    assert y.grad is not None
    d_loss = loss.discriminator_loss(disc, x, y)
    assert d_loss.total.requires_grad and d_loss.total.item() > 0
    disc.zero_grad()
    y.grad = None
    d_loss.total.backward()
    assert y.grad is None  # the reconstruction is detached for the discriminator step
    assert all(p.grad is not None for p in disc.parameters())


def test_compressed_spectrum_loss_on_known_signals():
    loss = CompressedSpectrumLoss([256, 512])
    x = _noise(length=8000)
    assert loss(x, x).item() == 0.0
    # A gain g scales every compressed value by g^0.3: both terms are (g^0.3 - 1)^2 mean(|X|^0.6).
    expected = torch.stack(
        [
            (0.5**0.3 - 1) ** 2 * stft(x, n, n // 4, torch.hann_window(n)).abs().clamp_min(1e-5).pow(0.6).mean()
            for n in (256, 512)
        ]
    ).mean()
    assert loss(0.5 * x, x).item() == pytest.approx(expected.item(), rel=1e-4)
    # Sign-flipped: the same magnitudes, every phase off by pi: only the complex part (share 0.3) sees it.
    flipped = loss(-x, x).item()
    magnitudes = torch.stack(
        [stft(x, n, n // 4, torch.hann_window(n)).abs().clamp_min(1e-5).pow(0.6).mean() for n in (256, 512)]
    ).mean()
    assert flipped == pytest.approx(0.3 * 4 * magnitudes.item(), rel=1e-4)


def test_compressed_spectrum_is_a_generator_term_only_when_weighted():
    x = _noise()
    off = CodecLoss(_small_cfg(), SR).generator_loss(x, 0.9 * x, torch.tensor(0.0))
    assert "compressed_spectrum" not in off.breakdown
    cfg = _small_cfg(compressed_spectrum_weight=2.0, compressed_spectrum_fft_sizes=[256])
    on = CodecLoss(cfg, SR).generator_loss(x, 0.9 * x, torch.tensor(0.0))
    term = on.breakdown["compressed_spectrum"]
    assert term > 0 and on.total.item() == pytest.approx(off.total.item() + 2.0 * term.item(), rel=1e-5)


def test_adversarial_every_k_steps_after_the_start():
    loss = CodecLoss(_small_cfg(adversarial_start_step=5, adversarial_every=3), SR)
    assert [s for s in range(16) if loss.adversarial_active(s)] == [5, 8, 11, 14]
    with pytest.raises(ValueError, match="adversarial_every"):
        _small_cfg(adversarial_every=0)


def test_losses_are_float32_under_bf16_autocast_and_close_to_fp32():
    loss = CodecLoss(_small_cfg(), SR)
    x, y = _noise(0), _noise(1).bfloat16()  # a decoder under autocast hands back bf16
    ref = loss.generator_loss(x, y.float(), torch.tensor(0.0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss.generator_loss(x, y, torch.tensor(0.0))
    assert got.total.dtype == torch.float32
    torch.testing.assert_close(got.total, ref.total)


def test_buffers_are_not_saved_and_follow_dtype_moves():
    loss = CodecLoss(_small_cfg(), SR)
    assert loss.state_dict() == {}  # windows and filters are rebuilt, never stale in checkpoints
    assert {b.device for b in loss.buffers()} == {torch.device("cpu")}
    assert len(list(loss.buffers())) == 2 + 2 * 2  # 2 STFT windows + (window, filterbank) per mel scale


def test_config_validation():
    with pytest.raises(ValueError):
        LossConfig(mel_weight=-1.0)
    with pytest.raises(ValueError):
        LossConfig(adversarial_start_step=-1)


def test_the_cosine_weight_hands_over_linearly_between_the_decay_fractions():
    from codec.config.loss import CosineDecay

    cfg = _small_cfg(waveform_cosine_weight=10.0, waveform_cosine_decay=CosineDecay(start=0.4, end=0.6))
    assert [cfg.cosine_weight(p) for p in (0.0, 0.4, 0.5, 0.6, 0.99)] == pytest.approx([10, 10, 5, 0, 0])
    assert _small_cfg().cosine_weight(0.999) == 10.0  # the default never decays within a run
    with pytest.raises(ValueError, match="start <= end"):
        CosineDecay(start=0.7, end=0.6)
    with pytest.raises(ValueError, match="final_weight"):
        CosineDecay(final_weight=-1.0)


def test_the_generator_loss_weights_the_cosine_term_for_the_run_s_progress():
    from codec.config.loss import CosineDecay

    x, y = _noise(0), _noise(1)
    decay = CosineDecay(start=0.5, end=0.5, final_weight=1.0)
    loss = CodecLoss(_small_cfg(waveform_cosine_weight=10.0, waveform_cosine_decay=decay), SR)
    early = loss.generator_loss(x, y, torch.tensor(0.0), progress=0.25)
    late = loss.generator_loss(x, y, torch.tensor(0.0), progress=0.75)
    cosine = early.breakdown["waveform_cosine"]
    assert torch.equal(cosine, late.breakdown["waveform_cosine"])  # the term itself is logged unweighted
    assert (early.total - late.total).item() == pytest.approx(9.0 * cosine.item(), rel=1e-5)
