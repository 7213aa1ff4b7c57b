"""Spectral front-ends over ``torch.stft``: STFT magnitudes and the project's mel filterbank.

No torchaudio or librosa: the mel scale (Slaney's or HTK's) and the triangular filters are
built here with numpy in float64 and stored as float32 buffers. Spectra are always computed
in float32 with autocast off, so the losses stay accurate under bf16 mixed precision.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

MelScale = Literal["slaney", "htk"]

# Slaney's Auditory Toolbox: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15 mels
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(freq: np.ndarray | float, scale: MelScale = "slaney") -> np.ndarray:
    """Frequency in Hz -> mels on the ``scale`` mel scale."""
    f = np.asarray(freq, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    if scale != "slaney":
        raise ValueError(f"unknown mel scale {scale!r}; expected 'slaney' or 'htk'")
    linear = f / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: np.ndarray | float, scale: MelScale = "slaney") -> np.ndarray:
    """Mels on the ``scale`` mel scale -> frequency in Hz (inverse of :func:`hz_to_mel`)."""
    m = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if scale != "slaney":
        raise ValueError(f"unknown mel scale {scale!r}; expected 'slaney' or 'htk'")
    linear = _F_SP * m
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log, linear)


def mel_band_edges(n_mels: int, f_min: float, f_max: float, scale: MelScale = "slaney") -> np.ndarray:
    """``n_mels + 2`` frequencies (Hz) equally spaced in mels: filter ``i`` rises from
    edge ``i``, peaks at edge ``i + 1`` and falls to zero at edge ``i + 2``."""
    mels = np.linspace(hz_to_mel(f_min, scale), hz_to_mel(f_max, scale), n_mels + 2)
    return mel_to_hz(mels, scale)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    scale: MelScale = "slaney",
    norm: Literal["slaney"] | None = "slaney",
) -> torch.Tensor:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (float32) for one-sided spectra.

    ``norm="slaney"`` scales each triangle by ``2 / (f_right - f_left)`` (unit area in Hz),
    ``None`` leaves peaks at 1.
    """
    f_max = sample_rate / 2.0 if f_max is None else f_max
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}")
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_band_edges(n_mels, f_min, f_max, scale)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    elif norm is not None:
        raise ValueError(f"unknown mel norm {norm!r}; expected 'slaney' or None")
    return torch.from_numpy(weights).float()


def stft(
    x: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, center: bool = True, normalized: bool = False
) -> torch.Tensor:
    """Complex one-sided STFT ``[B, n_fft // 2 + 1, frames]`` of ``x [B, T]`` or ``[B, 1, T]``.

    Runs in float32 with autocast disabled whatever the caller's precision.
    ``window`` has ``win_length <= n_fft`` samples (centred by torch when shorter).
    """
    if x.dim() == 3:
        x = x.squeeze(1)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        # Reflection needs more samples than the pad; very short signals fall back to zeros.
        pad_mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
        return torch.stft(
            x,
            n_fft,
            hop_length=hop_length,
            win_length=window.shape[-1],
            window=window.float(),
            center=center,
            pad_mode=pad_mode,
            normalized=normalized,
            return_complex=True,
        )


def magnitude(spec: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``|spec|`` with the power clamped at ``eps``, so the gradient of sqrt stays finite at 0."""
    return torch.sqrt(torch.clamp(spec.real.square() + spec.imag.square(), min=eps))


class MelSpectrogram(nn.Module):
    """Waveform ``[B, 1, T]`` -> mel magnitude spectrogram ``[B, n_mels, T // hop_length + 1]`` (float32)."""

    window: torch.Tensor
    filterbank: torch.Tensor

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        win_length: int | None = None,
        f_min: float = 0.0,
        f_max: float | None = None,
        scale: MelScale = "slaney",
        norm: Literal["slaney"] | None = "slaney",
    ):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(win_length or n_fft), persistent=False)
        self.register_buffer(
            "filterbank", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, scale, norm), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mag = magnitude(stft(x, self.n_fft, self.hop_length, self.window))
        with torch.autocast(device_type=mag.device.type, enabled=False):
            return torch.matmul(self.filterbank, mag)
