"""Long-term spectra of a codec's output against its input, and the artefacts they show (pure functions).

A decoder built from transposed convolutions prints tones at multiples of ``sample_rate / s`` for the
products ``s`` of its strides (2 kHz, 4 kHz, 6 kHz at 16 kHz with strides 8, 4, 2), and a free output
bias or DC bin drifts to an offset: both hide in the mean of SNR or PESQ but stand out in the average
spectrum. :func:`spectrum_check` compares the average power spectra of output and input bin by bin
(the *excess*, in dB) and reports narrow peaks of the excess, the excess at DC and near Nyquist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

N_FFT = 1024  # 15.6 Hz bins at 16 kHz: narrow enough to resolve a tone from its neighbours
PEAK_LIMIT_DB = 6.0  # a narrow peak of the excess over its neighbourhood's median
BAND_LIMIT_DB = 6.0  # mean excess at DC or in the top band, the overall level taken out
RIPPLE_LIMIT_DB = 1.5  # ripple with the frame rate as period
HIGH_BAND_LIMIT_DB = 2.0  # the level above 1 kHz against the level below it, output over input


def fft_size(sample_rate: int, frame_rates: Sequence[float] = (), minimum: int = N_FFT) -> int:
    """The average spectrum's FFT size: ``minimum``, or the smallest power of two above it whose bins are a
    third of the slowest frame rate or finer (a ripple with that period needs at least two bins a period to be
    fitted, :func:`frame_ripple_db`; a 25 frames/s codec needs 2048 points at 16 kHz, 7.8 Hz bins)."""
    n = minimum
    while frame_rates and sample_rate / n > min(frame_rates) / 3:
        n *= 2
    return n


def average_power_spectrum(signals: Sequence[np.ndarray], n_fft: int = N_FFT) -> np.ndarray:
    """Mean power spectrum over every frame of every signal (Welch: Hann window, hop ``n_fft / 2``),
    ``[n_fft // 2 + 1]`` float64. Signals shorter than a frame are zero-padded to one frame."""
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    hop = n_fft // 2
    total, count = np.zeros(n_fft // 2 + 1), 0
    for signal in signals:
        x = np.asarray(signal, dtype=np.float64).reshape(-1)
        if x.size < n_fft:
            x = np.pad(x, (0, n_fft - x.size))
        frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
        total += (np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2).sum(axis=0)
        count += frames.shape[0]
    if count == 0:
        raise ValueError("no signal to average")
    return total / count


class Peak(NamedTuple):
    frequency_hz: float
    excess_db: float  # output over input at the peak, minus the median excess around it


class SpectrumCheck(NamedTuple):
    """What :func:`spectrum_check` found; ``ok`` is False when any artefact passes its limit."""

    peaks: list[Peak]  # narrow peaks of the output's excess over the input, strongest first
    dc_excess_db: float  # mean excess in the bins under ``dc_hz``
    nyquist_excess_db: float  # mean excess in the top ``top_hz`` below Nyquist
    level_excess_db: float  # median excess over the speech band, 100 Hz - 4 kHz (the overall level difference)
    frame_ripple_db: float  # the strongest ripple of the excess with a frame rate as period (NaN: not asked)
    high_band_db: float  # mean excess over 1 - 7.5 kHz minus the mean over 100 Hz - 1 kHz (0: balanced)
    ok: bool

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "dc_excess_db": self.dc_excess_db,
            "nyquist_excess_db": self.nyquist_excess_db,
            "level_excess_db": self.level_excess_db,
            "frame_ripple_db": self.frame_ripple_db,
            "high_band_db": self.high_band_db,
            "peaks": [{"frequency_hz": p.frequency_hz, "excess_db": p.excess_db} for p in self.peaks],
        }


def excess_db(reference: np.ndarray, output: np.ndarray, floor_db: float = -100.0) -> np.ndarray:
    """``10 log10(output / reference)`` per bin of two average power spectra (``[n_fft // 2 + 1]`` each), both
    floored at ``floor_db`` under the reference's strongest bin (silent bins compare as equal)."""
    reference = np.asarray(reference, dtype=np.float64)
    output = np.asarray(output, dtype=np.float64)
    if reference.shape != output.shape or reference.ndim != 1 or reference.size < 8:
        raise ValueError(f"spectra must be 1-D of equal length >= 8, got {reference.shape} and {output.shape}")
    floor = reference.max() * 10 ** (floor_db / 10) if reference.max() > 0 else 1e-30
    return 10 * np.log10(np.maximum(output, floor) / np.maximum(reference, floor))


def frame_ripple_db(
    excess: np.ndarray, bin_hz: float, frame_rate: float, band_hz: tuple[float, float] = (1000.0, 7500.0)
) -> float:
    """Amplitude in dB of the sinusoidal component of an excess curve (``[bins]``, ``bin_hz`` apart) whose period
    along the frequency axis is ``frame_rate`` Hz, fitted over ``band_hz``.

    An output that carries a copy of itself one frame hop late (a ghost between overlapping frames, ``y = x + a
    x(t - hop)``) has its power spectrum multiplied by ``|1 + a exp(-2j pi f hop)|^2``: a ripple with period
    ``1 / hop = frame_rate`` in frequency, of amplitude about ``20 a / ln 10`` dB, which the average spectrum's
    window smooths by its autocorrelation at the hop (about half, for a 1024-point Hann window and a 20 ms
    hop at 16 kHz). Speech's own spectrum has no such fixed period, so its ripple fits to a fraction of a dB.
    """
    excess = np.asarray(excess, dtype=np.float64)
    hz = np.arange(excess.size) * bin_hz
    band = (hz >= band_hz[0]) & (hz <= min(band_hz[1], hz[-1]))
    if frame_rate < 2 * bin_hz or band.sum() < 8:
        raise ValueError(f"a {frame_rate:g} Hz period needs bins finer than {frame_rate / 2:g} Hz over the band")
    x, phase = excess[band] - excess[band].mean(), 2 * np.pi * hz[band] / frame_rate
    return float(2 * np.hypot((x * np.cos(phase)).mean(), (x * np.sin(phase)).mean()))


def spectrum_check(
    reference: np.ndarray,
    output: np.ndarray,
    sample_rate: int,
    *,
    peak_db: float = PEAK_LIMIT_DB,
    neighbourhood_hz: float = 250.0,
    dc_hz: float = 40.0,
    top_hz: float = 500.0,
    band_db: float = BAND_LIMIT_DB,
    floor_db: float = -100.0,
    frame_rates: Sequence[float] = (),
    ripple_db: float = RIPPLE_LIMIT_DB,
    high_band_limit_db: float = HIGH_BAND_LIMIT_DB,
) -> SpectrumCheck:
    """Compare the average power spectra ``reference`` (input) and ``output`` (``[n_fft // 2 + 1]`` each).

    The excess is ``10 log10(output / reference)`` per bin, both floored at ``floor_db`` below the
    reference's strongest bin. A *narrow peak* is a local maximum of the excess that stands more than
    ``peak_db`` above the median excess within ``neighbourhood_hz`` on either side (a tone the input does not
    have, or a much stronger one). DC and the top band fail when their mean excess passes ``band_db``
    (the overall level, the median excess over 100 Hz - 4 kHz where speech has its energy, is subtracted
    first, so a quieter or louder output is no artefact). With ``frame_rates`` (the code frame rate, and the rate of
    a decoder's overlap-added frames where it differs), the strongest ripple of the excess with one of them as
    period (:func:`frame_ripple_db`) fails past ``ripple_db``. The high band fails when its level
    relative to the low band differs from the input's by more than ``high_band_limit_db``: the mean excess over
    1 - 7.5 kHz (harmonics there are what a blurred decoder loses) against the mean over 100 Hz - 1 kHz.
    """
    excess = excess_db(reference, output, floor_db)
    bins = excess.size
    hz_per_bin = sample_rate / 2 / (bins - 1)
    frequencies = np.arange(bins) * hz_per_bin
    speech = (frequencies >= 100.0) & (frequencies <= min(4000.0, sample_rate / 2))
    median = float(np.median(excess[speech] if speech.any() else excess))
    half = max(2, int(round(neighbourhood_hz / hz_per_bin)))
    peaks = []
    for k in range(1, bins - 1):
        lo, hi = max(0, k - half), min(bins, k + half + 1)
        if excess[k] < excess[k - 1] or excess[k] < excess[k + 1]:
            continue
        local = float(np.median(excess[lo:hi]))
        if excess[k] - local > peak_db:
            peaks.append(Peak(float(frequencies[k]), float(excess[k] - local)))
    peaks.sort(key=lambda p: -p.excess_db)
    dc = float(excess[frequencies < max(dc_hz, hz_per_bin)].mean()) - median
    top = float(excess[frequencies > sample_rate / 2 - max(top_hz, hz_per_bin)].mean()) - median
    ripple = max((frame_ripple_db(excess, hz_per_bin, rate) for rate in frame_rates), default=math.nan)
    low = (frequencies >= 100.0) & (frequencies < 1000.0)
    high = (frequencies >= 1000.0) & (frequencies <= min(7500.0, sample_rate / 2))
    high_band = float(excess[high].mean() - excess[low].mean()) if high.any() and low.any() else math.nan
    ok = (
        not peaks
        and dc <= band_db
        and top <= band_db
        and not ripple > ripple_db
        and not abs(high_band) > high_band_limit_db
    )
    return SpectrumCheck(peaks, dc, top, median, ripple, high_band, ok=ok)
