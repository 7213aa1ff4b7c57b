"""Training losses of the codec: reconstruction (waveform L1 and cosine, multi-resolution STFT,
multi-scale mel), the quantizer's commitment loss, and the adversarial stage (the discriminators of
codec.losses.discriminator with hinge or least-squares loss and feature matching), all weighted by :class:`LossConfig`.

Spectral terms are computed in float32 whatever the autocast precision (see codec.dsp.mel).
Waveforms are ``[B, 1, T]``; every loss is a scalar tensor.
"""

from __future__ import annotations

from typing import NamedTuple, cast

import torch
from torch import nn
from torch.nn import functional as F

from codec.config.loss import AdversarialLoss, LossConfig
from codec.dsp.mel import MelSpectrogram, magnitude, stft
from codec.losses.discriminator import Discriminator

_POWER_FLOOR = 1e-10  # magnitudes below 1e-5 count as 1e-5 inside logs


class LossOutput(NamedTuple):
    """``total``: the scalar to backpropagate; ``breakdown``: unweighted terms, detached, by name."""

    total: torch.Tensor
    breakdown: dict[str, torch.Tensor]


def waveform_cosine_loss(reconstruction: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant waveform loss ``1 - cos(y - mean(y), x - mean(x))`` along the last axis, averaged
    over examples; in ``[0, 2]``: 0 for any positive multiple of the target, 1 for an uncorrelated output.

    Why: every other reconstruction term is blind to phase (spectral magnitudes) or, like L1, is lowered
    as much by a quieter output as by a better-aligned one. With the phase still random, the cheapest
    way down for L1 is to shrink the output, so a codec trained on them alone shapes its spectrum for
    thousands of steps at negative SNR. The cosine is the correlation SI-SNR is built on
    (``SI-SNR = 10 log10(c^2 / (1 - c^2))``): its gradient only turns the waveform towards the target,
    and the spectral terms set the level. ``[B, 1, T]`` -> scalar (float32).
    """
    y = reconstruction.float().flatten(1)
    x = target.float().flatten(1)
    y = y - y.mean(-1, keepdim=True)
    x = x - x.mean(-1, keepdim=True)
    return (1 - F.cosine_similarity(y, x, dim=-1, eps=eps)).mean()


class STFTLossOutput(NamedTuple):
    spectral_convergence: torch.Tensor
    log_magnitude: torch.Tensor


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence ``||Y| - |X||_F / ||Y||_F`` (per example) and L1 of natural-log
    magnitudes, each averaged over the FFT sizes (hop ``n_fft / 4``, Hann window)."""

    def __init__(self, fft_sizes: list[int]):
        super().__init__()
        self.fft_sizes = list(fft_sizes)
        for n in self.fft_sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> STFTLossOutput:
        sc, logmag = [], []
        for n in self.fft_sizes:
            window = getattr(self, f"window_{n}")
            x = magnitude(stft(reconstruction, n, n // 4, window), _POWER_FLOOR)
            y = magnitude(stft(target, n, n // 4, window), _POWER_FLOOR)
            diff = torch.linalg.vector_norm(y - x, dim=(-2, -1))
            sc.append((diff / torch.linalg.vector_norm(y, dim=(-2, -1)).clamp_min(1e-7)).mean())
            logmag.append(F.l1_loss(torch.log(x), torch.log(y)))
        return STFTLossOutput(torch.stack(sc).mean(), torch.stack(logmag).mean())


class CompressedSpectrumLoss(nn.Module):
    """Mean square error of power-law compressed spectra, magnitude and complex (Braun and Tashev, "A
    consolidated view of loss functions for supervised deep learning-based speech enhancement", 2021):

    ``(1 - a) mse(|Y|^c, |X|^c) + a mse(|Y|^c e^{i arg Y}, |X|^c e^{i arg X})``, ``c = 0.3``, ``a = 0.3``,
    averaged over the FFT sizes (hop ``n_fft / 4``, Hann window).

    Why: the compression lifts the weak high bands towards the strong low ones, so their harmonics weigh in
    the fit (a waveform loss is dominated by the first kilohertz), and the complex part asks for each bin's
    phase as well, which a magnitude or mel loss never does: smeared harmonics (frames whose phases do not
    line up) are what it penalises.
    """

    def __init__(self, fft_sizes: list[int], compress: float = 0.3, complex_share: float = 0.3):
        super().__init__()
        self.fft_sizes = list(fft_sizes)
        self.compress, self.complex_share = compress, complex_share
        for n in self.fft_sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def _compressed(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(|S|^c, |S|^c e^{i arg S})``; the power is floored so the gradient stays finite at 0."""
        power = torch.clamp(spec.real.square() + spec.imag.square(), min=_POWER_FLOOR)
        return power.pow(self.compress / 2), spec * power.pow((self.compress - 1) / 2)

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses = []
        for n in self.fft_sizes:
            window = getattr(self, f"window_{n}")
            mag_y, cplx_y = self._compressed(stft(reconstruction, n, n // 4, window))
            mag_x, cplx_x = self._compressed(stft(target, n, n // 4, window))
            magnitude_term = (mag_y - mag_x).square().mean()
            complex_term = (cplx_y - cplx_x).abs().square().mean()
            losses.append((1 - self.complex_share) * magnitude_term + self.complex_share * complex_term)
        return torch.stack(losses).mean()


class MultiScaleMelLoss(nn.Module):
    """L1 between log mel magnitudes (clamped at 1e-5), averaged over window sizes.

    ``n_mels``: one band count for every size, or one per size (DAC pairs windows 32..2048 with 5..320
    bands: short windows see timing with few bands, long ones the harmonics with many)."""

    def __init__(self, sample_rate: int, fft_sizes: list[int], n_mels: int | list[int]):
        super().__init__()
        bands = n_mels if isinstance(n_mels, list) else [n_mels] * len(fft_sizes)
        self.mels = nn.ModuleList(MelSpectrogram(sample_rate, n, max(1, n // 4), m) for n, m in zip(fft_sizes, bands))

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses = [
            F.l1_loss(torch.log(mel(reconstruction).clamp_min(1e-5)), torch.log(mel(target).clamp_min(1e-5)))
            for mel in self.mels
        ]
        return torch.stack(losses).mean()


def _mean_over(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([v.float() for v in values]).mean()


def discriminator_adversarial_loss(
    real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor], kind: AdversarialLoss
) -> torch.Tensor:
    """Hinge: ``mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))``; LSGAN: ``mean((1 - D(x))^2) + mean(D(G(z))^2)``;
    averaged over sub-discriminators."""
    if kind == "hinge":
        terms = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_logits, fake_logits)]
    elif kind == "lsgan":
        terms = [(1 - r).square().mean() + f.square().mean() for r, f in zip(real_logits, fake_logits)]
    else:
        raise ValueError(f"unknown adversarial loss {kind!r}; expected 'hinge' or 'lsgan'")
    return _mean_over(terms)


def generator_adversarial_loss(fake_logits: list[torch.Tensor], kind: AdversarialLoss) -> torch.Tensor:
    """Hinge: ``mean(relu(1 - D(G(z))))``; LSGAN: ``mean((1 - D(G(z)))^2)``; averaged over sub-discriminators."""
    if kind == "hinge":
        return _mean_over([F.relu(1 - f).mean() for f in fake_logits])
    if kind == "lsgan":
        return _mean_over([(1 - f).square().mean() for f in fake_logits])
    raise ValueError(f"unknown adversarial loss {kind!r}; expected 'hinge' or 'lsgan'")


def feature_matching_loss(
    real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]
) -> torch.Tensor:
    """Mean over every hidden layer of ``mean|real - fake| / mean|real|`` (EnCodec's relative L1)."""
    terms = [
        F.l1_loss(f.float(), r.float()) / r.float().abs().mean().clamp_min(1e-8)
        for reals, fakes in zip(real_features, fake_features)
        for r, f in zip(reals, fakes)
    ]
    return _mean_over(terms)


def combine_generator_losses(terms: dict[str, torch.Tensor], cfg: LossConfig, progress: float = 0.0) -> LossOutput:
    """Weighted sum of named generator terms; names are ``waveform_l1``, ``waveform_cosine`` (weighted for
    ``progress``, step / train.steps: ``LossConfig.cosine_weight``), ``spectral_convergence``, ``log_magnitude``,
    ``mel``, ``compressed_spectrum``, ``commitment`` (already weighted), ``adversarial``, ``feature_matching``."""
    weights = {
        "waveform_l1": cfg.waveform_l1_weight,
        "waveform_cosine": cfg.cosine_weight(progress),
        "spectral_convergence": cfg.spectral_convergence_weight,
        "log_magnitude": cfg.log_magnitude_weight,
        "mel": cfg.mel_weight,
        "compressed_spectrum": cfg.compressed_spectrum_weight,
        "commitment": 1.0,
        "adversarial": cfg.adversarial_weight,
        "feature_matching": cfg.feature_matching_weight,
    }
    unknown = sorted(set(terms) - set(weights))
    if unknown:
        raise ValueError(f"unknown generator loss term(s) {unknown}")
    # A tensor: ``sum`` starts from the int 0 only for an empty ``terms`` (which fails below, as before).
    total = cast(torch.Tensor, sum(weights[name] * value.float() for name, value in terms.items()))
    breakdown = {name: value.detach().float() for name, value in terms.items()}
    breakdown["total"] = total.detach()
    return LossOutput(total, breakdown)


class CodecLoss(nn.Module):
    """All of the codec's losses for one ``LossConfig``; holds the STFT windows and mel filters
    as buffers, so ``.to(device)`` moves them. The discriminator is passed in, not owned."""

    def __init__(self, cfg: LossConfig, sample_rate: int):
        super().__init__()
        self.cfg = cfg
        self.stft_loss = MultiResolutionSTFTLoss(cfg.stft_fft_sizes)
        self.mel_loss = MultiScaleMelLoss(sample_rate, cfg.mel_fft_sizes, cfg.mel_n_mels)
        # Built (and computed) only when weighted: the default runs are what they were.
        self.compressed_loss = (
            CompressedSpectrumLoss(cfg.compressed_spectrum_fft_sizes) if cfg.compressed_spectrum_weight > 0 else None
        )

    def adversarial_active(self, step: int) -> bool:
        """Whether the discriminator takes part at generator step ``step`` (0-based): from
        ``adversarial_start_step`` on, every ``adversarial_every``-th step."""
        start = self.cfg.adversarial_start_step
        return step >= start and (step - start) % self.cfg.adversarial_every == 0

    def generator_loss(
        self,
        target: torch.Tensor,
        reconstruction: torch.Tensor,
        commitment_loss: torch.Tensor,
        step: int = 0,
        discriminator: Discriminator | None = None,
        progress: float = 0.0,
    ) -> LossOutput:
        """Reconstruction + commitment, plus adversarial and feature-matching terms once
        ``step >= adversarial_start_step`` and a discriminator is given. ``[B, 1, T]`` waveforms; ``progress``
        (step / train.steps) sets the waveform cosine's weight."""
        if target.shape != reconstruction.shape:
            raise ValueError(f"target {tuple(target.shape)} and reconstruction {tuple(reconstruction.shape)} differ")
        stft_terms = self.stft_loss(reconstruction, target)
        terms = {
            "waveform_l1": F.l1_loss(reconstruction.float(), target.float()),
            "waveform_cosine": waveform_cosine_loss(reconstruction, target),
            "spectral_convergence": stft_terms.spectral_convergence,
            "log_magnitude": stft_terms.log_magnitude,
            "mel": self.mel_loss(reconstruction, target),
            "commitment": commitment_loss,
        }
        if self.compressed_loss is not None:
            terms["compressed_spectrum"] = self.compressed_loss(reconstruction, target)
        if discriminator is not None and self.adversarial_active(step):
            fake = discriminator(reconstruction)
            with torch.no_grad():
                real = discriminator(target)
            terms["adversarial"] = generator_adversarial_loss(fake.logits, self.cfg.adversarial_loss)
            terms["feature_matching"] = feature_matching_loss(real.features, fake.features)
        return combine_generator_losses(terms, self.cfg, progress)

    def discriminator_loss(
        self, discriminator: Discriminator, target: torch.Tensor, reconstruction: torch.Tensor
    ) -> LossOutput:
        """The discriminator's loss on real ``target`` and detached ``reconstruction``."""
        real = discriminator(target)
        fake = discriminator(reconstruction.detach())
        total = discriminator_adversarial_loss(real.logits, fake.logits, self.cfg.adversarial_loss)
        return LossOutput(total, {"discriminator": total.detach()})
