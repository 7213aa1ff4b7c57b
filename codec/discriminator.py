"""Multi-scale STFT discriminator (EnCodec's MS-STFT discriminator).

Each sub-discriminator looks at the complex STFT of the waveform at one window size, as a
2-channel image (real, imaginary) of shape ``[B, 2, frames, n_fft // 2 + 1]``, and applies
weight-normalised 2D convolutions: dilated in time, strided by 2 in frequency.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from codec.loss_config import DiscriminatorConfig
from codec.mel import stft


class DiscriminatorOutput(NamedTuple):
    """One entry per sub-discriminator: ``logits[i]`` is ``[B, 1, frames, bins]``;
    ``features[i]`` lists every hidden activation (for feature matching)."""

    logits: list[torch.Tensor]
    features: list[list[torch.Tensor]]


def _conv2d(c_in: int, c_out: int, kernel: tuple[int, int], stride=(1, 1), dilation=(1, 1)) -> nn.Module:
    padding = (dilation[0] * (kernel[0] - 1) // 2, dilation[1] * (kernel[1] - 1) // 2)
    return weight_norm(nn.Conv2d(c_in, c_out, kernel, stride=stride, dilation=dilation, padding=padding))


class STFTDiscriminator(nn.Module):
    """Waveform ``[B, 1, T]`` -> (logits ``[B, 1, frames, bins]``, hidden activations)."""

    def __init__(self, n_fft: int, cfg: DiscriminatorConfig):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        ch, k = cfg.channels, tuple(cfg.kernel_size)
        convs = [_conv2d(2, ch, k)]
        convs += [_conv2d(ch, ch, k, stride=(1, 2), dilation=(d, 1)) for d in cfg.dilations]
        convs.append(_conv2d(ch, ch, (k[0], k[0])))
        self.convs = nn.ModuleList(convs)
        self.conv_post = _conv2d(ch, 1, (k[0], k[0]))
        self.negative_slope = cfg.negative_slope

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if x.shape[-1] < self.n_fft:  # uncentred STFT needs at least one full window
            x = F.pad(x, (0, self.n_fft - x.shape[-1]))
        spec = stft(x, self.n_fft, self.hop_length, self.window, center=False, normalized=True)
        z = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, frames, bins]
        features = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), self.negative_slope)
            features.append(z)
        return self.conv_post(z), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """One :class:`STFTDiscriminator` per FFT size in ``cfg.fft_sizes``."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, cfg) for n in cfg.fft_sizes)

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        logits, features = [], []
        for disc in self.discriminators:
            out, feats = disc(x)
            logits.append(out)
            features.append(feats)
        return DiscriminatorOutput(logits, features)
