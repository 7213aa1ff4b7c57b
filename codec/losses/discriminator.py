"""The discriminators of the adversarial stage: EnCodec's multi-scale STFT (``msstft``), HiFi-GAN's
multi-period (``mpd``) and DAC's multi-band multi-resolution STFT (``mrd``) discriminators.

Every sub-discriminator maps a waveform ``[B, 1, T]`` to logits (any shape, one score per position) and the
list of its hidden activations (for feature matching). :class:`Discriminator` runs the kinds listed in
:class:`DiscriminatorConfig` side by side.

* ``msstft``: the complex STFT at one window size as a 2-channel image ``[B, 2, frames, bins]``,
  weight-normalised 2D convolutions dilated in time and strided by 2 in frequency.
* ``mpd``: the waveform folded into ``[B, 1, T / p, p]`` for a period ``p``; convolutions along the first
  axis (stride 3) see samples ``p`` apart, so each sub-discriminator checks one periodic structure (pitch
  harmonics, and the period-2 and period-4 patterns transposed convolutions leave behind).
* ``mrd``: the complex STFT split into frequency bands, each band with its own convolutions, their
  outputs joined along frequency for one last convolution: high bands are judged on their own terms
  instead of being drowned by the louder low ones.
"""

from __future__ import annotations

from typing import NamedTuple, cast

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from codec.config.loss import DiscriminatorConfig
from codec.dsp.mel import stft


class DiscriminatorOutput(NamedTuple):
    """One entry per sub-discriminator: ``logits[i]`` (e.g. ``[B, 1, frames, bins]``);
    ``features[i]`` lists every hidden activation (for feature matching)."""

    logits: list[torch.Tensor]
    features: list[list[torch.Tensor]]


def _conv2d(c_in: int, c_out: int, kernel: tuple[int, int], stride=(1, 1), dilation=(1, 1)) -> nn.Module:
    padding = (dilation[0] * (kernel[0] - 1) // 2, dilation[1] * (kernel[1] - 1) // 2)
    return weight_norm(nn.Conv2d(c_in, c_out, kernel, stride=stride, dilation=dilation, padding=padding))


def _complex_image(x: torch.Tensor, n_fft: int, window: torch.Tensor) -> torch.Tensor:
    """``[B, 1, T]`` -> normalised complex STFT as ``[B, 2, frames, bins]`` (hop ``n_fft / 4``, no centring)."""
    if x.shape[-1] < n_fft:  # uncentred STFT needs at least one full window
        x = F.pad(x, (0, n_fft - x.shape[-1]))
    spec = stft(x, n_fft, n_fft // 4, window, center=False, normalized=True)
    return torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)


class STFTDiscriminator(nn.Module):
    """Waveform ``[B, 1, T]`` -> (logits ``[B, 1, frames, bins]``, hidden activations)."""

    window: torch.Tensor

    def __init__(self, n_fft: int, cfg: DiscriminatorConfig):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        ch, k = cfg.channels, cast(tuple[int, int], tuple(cfg.kernel_size))  # (time, frequency)
        convs = [_conv2d(2, ch, k)]
        convs += [_conv2d(ch, ch, k, stride=(1, 2), dilation=(d, 1)) for d in cfg.dilations]
        convs.append(_conv2d(ch, ch, (k[0], k[0])))
        self.convs = nn.ModuleList(convs)
        self.conv_post = _conv2d(ch, 1, (k[0], k[0]))
        self.negative_slope = cfg.negative_slope

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features: list[torch.Tensor] = []
        z = _leaky_stack(self.convs, _complex_image(x, self.n_fft, self.window), self.negative_slope, features)
        return self.conv_post(z), features


def _leaky_stack(
    convs: nn.ModuleList, z: torch.Tensor, negative_slope: float, features: list[torch.Tensor]
) -> torch.Tensor:
    """``z`` through each conv and a leaky ReLU, in turn; every activation is appended to ``features`` (feature
    matching compares them), the last one returned."""
    for conv in convs:
        z = F.leaky_relu(conv(z), negative_slope)
        features.append(z)
    return z


class PeriodDiscriminator(nn.Module):
    """Waveform ``[B, 1, T]`` -> (logits ``[B, 1, ceil(T / p) / 3^n, p]``, hidden activations).

    The signal is reflect-padded to a multiple of the period and folded to ``[B, 1, T / p, p]``; kernels
    ``(5, 1)`` with stride 3 along the folded time axis, widths ``period_channels``, then a stride-1 layer.
    """

    def __init__(self, period: int, cfg: DiscriminatorConfig):
        super().__init__()
        self.period = period
        widths = [1, *cfg.period_channels]
        convs = [_conv2d(c_in, c_out, (5, 1), stride=(3, 1)) for c_in, c_out in zip(widths, widths[1:])]
        convs.append(_conv2d(widths[-1], widths[-1], (5, 1)))
        self.convs = nn.ModuleList(convs)
        self.conv_post = _conv2d(widths[-1], 1, (3, 1))
        self.negative_slope = cfg.negative_slope

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        pad = (-x.shape[-1]) % self.period
        if pad:
            x = F.pad(x, (0, pad), mode="reflect" if x.shape[-1] > pad else "constant")
        features: list[torch.Tensor] = []
        z = _leaky_stack(self.convs, x.reshape(x.shape[0], 1, -1, self.period), self.negative_slope, features)
        return self.conv_post(z), features


class BandSTFTDiscriminator(nn.Module):
    """Waveform ``[B, 1, T]`` -> (logits ``[B, 1, frames, bins']``, hidden activations), band by band.

    The bins of the complex STFT are split at ``bands`` (fractions of the bins); each band goes through its
    own stack (a conv, three convs strided by 2 in frequency, a conv) and the results are concatenated along
    frequency for the final convolution.
    """

    window: torch.Tensor

    def __init__(self, n_fft: int, cfg: DiscriminatorConfig):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        bins = n_fft // 2 + 1
        self.bands = [(int(lo * bins), max(int(lo * bins) + 1, int(hi * bins))) for lo, hi in cfg.bands]
        ch, k = cfg.channels, cast(tuple[int, int], tuple(cfg.kernel_size))  # (time, frequency)

        def stack() -> nn.ModuleList:
            return nn.ModuleList(
                [_conv2d(2, ch, k)]
                + [_conv2d(ch, ch, k, stride=(1, 2)) for _ in range(3)]
                + [_conv2d(ch, ch, (k[0], k[0]))]
            )

        self.band_convs = nn.ModuleList(stack() for _ in self.bands)
        self.conv_post = _conv2d(ch, 1, (k[0], k[0]))
        self.negative_slope = cfg.negative_slope

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        image = _complex_image(x, self.n_fft, self.window)
        features: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []
        for (lo, hi), convs in zip(self.bands, self.band_convs):
            # band_convs holds one ModuleList per band (a ModuleList yields plain Modules).
            outputs.append(_leaky_stack(cast(nn.ModuleList, convs), image[..., lo:hi], self.negative_slope, features))
        return self.conv_post(torch.cat(outputs, dim=-1)), features


class Discriminator(nn.Module):
    """Every sub-discriminator of ``cfg.kinds``, in the order msstft, mpd, mrd of the config lists."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        discs: list[nn.Module] = []
        if "msstft" in cfg.kinds:
            discs += [STFTDiscriminator(n, cfg) for n in cfg.fft_sizes]
        if "mpd" in cfg.kinds:
            discs += [PeriodDiscriminator(p, cfg) for p in cfg.periods]
        if "mrd" in cfg.kinds:
            discs += [BandSTFTDiscriminator(n, cfg) for n in cfg.band_fft_sizes]
        self.discriminators = nn.ModuleList(discs)

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        logits, features = [], []
        for disc in self.discriminators:
            out, feats = disc(x)
            logits.append(out)
            features.append(feats)
        return DiscriminatorOutput(logits, features)
