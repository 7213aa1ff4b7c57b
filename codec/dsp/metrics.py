"""Quality metrics of a reconstruction against its reference, and code-usage figures (pure functions).

Every definition used by the evaluation report lives here. Signals are waveforms in [-1, 1];
the torch metrics take ``reference`` and ``estimate`` of shape ``[..., T]`` and return ``[...]``
float32 (one value per signal). Sign conventions: every ``*_db`` ratio is in dB and *higher is
better* (it is never a loss); every ``*distance`` is *lower is better* and 0 for identical signals.

=========================  ======  ===========================================================
metric                     better  definition
=========================  ======  ===========================================================
snr_db                     higher  ``10 log10(sum r^2 / sum (r - e)^2)`` over the whole signal
si_snr_db                  higher  scale-invariant SNR: both made zero-mean, ``e`` projected on
                                   ``r`` (``t = <e, r> / ||r||^2 r``), ``10 log10(||t||^2 / ||e - t||^2)``
segsnr_db                  higher  segmental SNR: non-overlapping 20 ms frames (trailing partial
                                   frame dropped; a signal shorter than a frame is one frame),
                                   per-frame SNR clamped to [-10, 35] dB, mean over *all* frames.
                                   A frame reproduced exactly scores 35, a silent reference frame
                                   with any error scores -10.
mel_distance               lower   multi-scale mel distance: for n_fft in 256, 512, 1024, 2048
                                   (hop n_fft/4, Hann, 64 Slaney mel bands, 0-8 kHz at 16 kHz):
                                   mean ``|log10 max(M_r, 1e-5) - log10 max(M_e, 1e-5)|`` over bands
                                   and frames; then the mean over the four sizes. A gain ``g``
                                   gives ``|log10 g|``.
lsd_db                     lower   log-spectral distance: n_fft 512, hop 128, Hann; power spectra
                                   ``P = max(|X|^2, 1e-10)``; per frame the RMS over bins of
                                   ``10 log10 P_r - 10 log10 P_e``; mean over frames, in dB. A gain
                                   ``g`` gives ``|20 log10 g|``.
mrstft_distance            lower   multi-resolution STFT distance: for n_fft in 512, 1024, 2048
                                   (hop n_fft/4, Hann): spectral convergence
                                   ``|| |R| - |E| ||_F / || |R| ||_F`` plus the mean
                                   ``|ln |R| - ln |E||`` (magnitudes floored at ``sqrt(1e-7)``);
                                   mean over the sizes. A gain ``g`` gives ``|1 - g| + |ln g|``.
stoi                       higher  short-time objective intelligibility (pystoi, classic STOI,
                                   10 kHz internally), in [0, 1] (practically); NaN with a reason
                                   when too few non-silent frames remain.
pesq_wb                    higher  wide-band PESQ (ITU-T P.862.2 MOS-LQO via the ``pesq`` package,
                                   16 kHz, resampled there with soxr when needed), about 1.04-4.64;
                                   NaN with the package's reason (no utterances found, too short...).
speaker_similarity         higher  :func:`cosine_similarity` of the speaker embeddings of reference
                                   and estimate: Resemblyzer's GE2E encoder at 16 kHz, each signal
                                   preprocessed on its own (volume, VAD) as Resemblyzer does
                                   (codec/evaluation/speaker.py); in [0, 1] (non-negative
                                   embeddings), 1 for the same voice; NaN with a reason for a
                                   silent clip or one where the VAD finds no speech.
=========================  ======  ===========================================================

Code-usage figures of a residual quantizer, from histograms ``counts [n_q, K]`` of the codes
over a whole evaluation set (level ``l`` is the ``l``-th residual codebook):

- ``perplexity``: ``exp(H_l)`` with ``H_l`` the entropy (nats) of level ``l``'s empirical code
  distribution; in entries, ``K`` for perfectly uniform use, 1 for a single code.
- ``used_fraction``: fraction of the ``K`` entries that occur at least once.
- ``entropy_bits``: ``H_l / ln 2``, the bits per frame an ideal memoryless entropy coder needs for
  level ``l`` (at most ``log2 K``).
- ``nominal_kbps``: ``n_q log2(K) frame_rate / 1000``, what the codec sends without entropy coding.
- ``entropy_kbps``: ``sum over the first n_q levels of entropy_bits x frame_rate / 1000``: the
  bitrate an entropy coder fitted to the measured per-level distributions would reach (levels coded
  independently, no context), always <= nominal.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

from codec.dsp.mel import MelSpectrogram, magnitude, stft

_EPS = 1e-8

SEGMENT_SECONDS = 0.02
SEGSNR_MIN_DB = -10.0
SEGSNR_MAX_DB = 35.0
MEL_FFT_SIZES = (256, 512, 1024, 2048)
MEL_BANDS = 64
MEL_FLOOR = 1e-5
LSD_FFT = 512
LSD_POWER_FLOOR = 1e-10
STFT_FFT_SIZES = (512, 1024, 2048)
STFT_POWER_FLOOR = 1e-7
PESQ_RATE = 16000


def snr(reference: torch.Tensor, estimate: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Signal-to-noise ratio in dB along the last axis, higher is better.

    ``10 log10(sum(ref^2) / sum((ref - est)^2))``; shapes ``[..., T]`` -> ``[...]`` (float32).
    ``eps`` keeps silent references and perfect estimates finite.
    """
    reference, estimate = reference.float(), estimate.float()
    signal = reference.square().sum(-1)
    noise = (reference - estimate).square().sum(-1)
    return 10.0 * torch.log10((signal + eps) / (noise + eps))


def si_snr(reference: torch.Tensor, estimate: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Scale-invariant SNR in dB along the last axis (both signals made zero-mean), higher is better.

    The estimate is projected on the reference, ``target = (<est, ref> / ||ref||^2) ref``, and
    ``10 log10(||target||^2 / ||est - target||^2)`` is returned; ``[..., T]`` -> ``[...]``.
    Unlike :func:`snr` it ignores a wrong overall gain.
    """
    reference = reference.float() - reference.float().mean(-1, keepdim=True)
    estimate = estimate.float() - estimate.float().mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.square().sum(-1, keepdim=True) + eps)
    target = scale * reference
    return 10.0 * torch.log10((target.square().sum(-1) + eps) / ((estimate - target).square().sum(-1) + eps))


def segmental_snr(
    reference: torch.Tensor,
    estimate: torch.Tensor,
    sample_rate: int,
    frame_seconds: float = SEGMENT_SECONDS,
    min_db: float = SEGSNR_MIN_DB,
    max_db: float = SEGSNR_MAX_DB,
) -> torch.Tensor:
    """Segmental SNR in dB, ``[..., T]`` -> ``[...]``, higher is better (see the module table).

    Frames of ``round(frame_seconds * sample_rate)`` samples, no overlap, the trailing partial
    frame dropped. Per frame ``10 log10(sum r^2 / sum (r - e)^2)`` clamped to ``[min_db, max_db]``,
    where zero error counts as ``max_db`` (also for a silent frame) and a silent reference frame
    with nonzero error as ``min_db``; the mean over frames is returned.
    """
    reference, estimate = reference.double(), estimate.double()
    frame = max(1, int(round(frame_seconds * sample_rate)))
    length = reference.shape[-1]
    frame = min(frame, length)
    count = length // frame
    ref = reference[..., : count * frame].unflatten(-1, (count, frame))
    err = (reference - estimate)[..., : count * frame].unflatten(-1, (count, frame))
    signal, noise = ref.square().sum(-1), err.square().sum(-1)
    ratio = 10.0 * (torch.log10(signal) - torch.log10(noise))  # the +-inf and nan cases are replaced below
    per_frame = torch.where(
        noise == 0,
        torch.full_like(ratio, max_db),
        torch.where(signal == 0, torch.full_like(ratio, min_db), ratio.clamp(min_db, max_db)),
    )
    return per_frame.mean(-1).float()


def multiscale_mel_distance(
    reference: torch.Tensor,
    estimate: torch.Tensor,
    sample_rate: int,
    fft_sizes: Sequence[int] = MEL_FFT_SIZES,
    n_mels: int = MEL_BANDS,
    floor: float = MEL_FLOOR,
) -> torch.Tensor:
    """Mean L1 of log10 mel magnitudes, averaged over STFT sizes; ``[..., T]`` -> ``[...]``, lower is better."""
    ref, est, lead = _flat(reference, estimate)
    distances = []
    for n_fft in fft_sizes:
        mel = _mel(sample_rate, n_fft, n_mels).to(ref.device)
        diff = torch.log10(mel(ref).clamp_min(floor)) - torch.log10(mel(est).clamp_min(floor))
        distances.append(diff.abs().mean(dim=(-2, -1)))
    return torch.stack(distances).mean(0).reshape(lead)


def log_spectral_distance(
    reference: torch.Tensor, estimate: torch.Tensor, n_fft: int = LSD_FFT, floor: float = LSD_POWER_FLOOR
) -> torch.Tensor:
    """Log-spectral distance in dB, ``[..., T]`` -> ``[...]``, lower is better (see the module table)."""
    ref, est, lead = _flat(reference, estimate)
    window = torch.hann_window(n_fft, device=ref.device)
    powers = [_power(stft(s, n_fft, n_fft // 4, window)).clamp_min(floor) for s in (ref, est)]
    diff_db = 10.0 * (torch.log10(powers[0]) - torch.log10(powers[1]))  # [N, bins, frames]
    return diff_db.square().mean(-2).sqrt().mean(-1).reshape(lead)


def multi_resolution_stft_distance(
    reference: torch.Tensor,
    estimate: torch.Tensor,
    fft_sizes: Sequence[int] = STFT_FFT_SIZES,
    floor: float = STFT_POWER_FLOOR,
) -> torch.Tensor:
    """Spectral convergence + mean |ln magnitude difference|, averaged over FFT sizes;
    ``[..., T]`` -> ``[...]``, lower is better."""
    ref, est, lead = _flat(reference, estimate)
    distances = []
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft, device=ref.device)
        r, e = (magnitude(stft(s, n_fft, n_fft // 4, window), floor) for s in (ref, est))
        convergence = torch.linalg.vector_norm(r - e, dim=(-2, -1)) / torch.linalg.vector_norm(r, dim=(-2, -1))
        distances.append(convergence + (torch.log(r) - torch.log(e)).abs().mean(dim=(-2, -1)))
    return torch.stack(distances).mean(0).reshape(lead)


class MetricValue(NamedTuple):
    """A score from an external implementation: ``value`` is NaN when it could not be computed,
    and ``error`` then says why (None otherwise)."""

    value: float
    error: str | None = None


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> MetricValue:
    """Classic STOI of 1-D signals (pystoi), higher is better; NaN with a reason when undefined."""
    from pystoi import stoi as _stoi

    ref, est = _pair(reference, estimate)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = float(_stoi(ref, est, sample_rate, extended=False))
        except (ValueError, IndexError) as exc:
            return MetricValue(math.nan, f"stoi: {exc}")
    # pystoi warns and returns 1e-5 when silence removal leaves fewer than 30 frames (384 ms).
    for warning in caught:
        if "Not enough STFT frames" in str(warning.message):
            return MetricValue(math.nan, "stoi: fewer than 30 non-silent frames (about 0.4 s of speech)")
    return MetricValue(value)


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> MetricValue:
    """Wide-band PESQ (P.862.2) of 1-D signals at 16 kHz, higher is better; NaN with the reason
    (``NoUtterancesError``, ``BufferTooShortError``...) when the package cannot score them."""
    import pesq

    ref, est = _pair(reference, estimate)
    if sample_rate != PESQ_RATE:
        import soxr

        ref, est = (soxr.resample(s, sample_rate, PESQ_RATE, quality="HQ") for s in (ref, est))
    if not (np.any(ref) and np.any(est)):
        return MetricValue(math.nan, "pesq: silent signal")
    try:
        return MetricValue(float(pesq.pesq(PESQ_RATE, ref, est, "wb")))
    except pesq.PesqError as exc:
        return MetricValue(math.nan, f"pesq: {type(exc).__name__}: {exc}".rstrip(": "))
    except ValueError as exc:
        return MetricValue(math.nan, f"pesq: {exc}")


def cosine_similarity(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """``<a, b> / (||a|| ||b||)`` of two vectors (e.g. speaker embeddings), in [-1, 1]; NaN when either is zero."""
    x, y = _pair(a, b)
    norms = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(np.dot(x, y) / norms) if norms > 0 else math.nan


# ------------------------------------------------------------------ code usage of a residual quantizer


def code_histograms(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """``codes [B, n_q, F]`` (int) -> float64 counts ``[n_q, K]`` of every entry per level."""
    n_q = codes.shape[1]
    offsets = torch.arange(n_q, device=codes.device)[:, None] * codebook_size
    flat = (codes.transpose(0, 1).reshape(n_q, -1) + offsets).reshape(-1)
    return torch.bincount(flat, minlength=n_q * codebook_size).double().view(n_q, codebook_size)


def entropy_bits(counts: torch.Tensor) -> torch.Tensor:
    """Empirical entropy in bits per frame of each level's code histogram: ``[n_q, K]`` -> ``[n_q]``."""
    probs = counts.double() / counts.double().sum(-1, keepdim=True).clamp_min(1.0)
    return -torch.special.xlogy(probs, probs).sum(-1) / math.log(2.0)


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """``2 ** entropy_bits`` (= exp of the entropy in nats), in entries: ``[n_q, K]`` -> ``[n_q]``."""
    return torch.exp2(entropy_bits(counts))


def used_fraction(counts: torch.Tensor) -> torch.Tensor:
    """Fraction of a level's entries occurring at least once: ``[n_q, K]`` -> ``[n_q]``."""
    return (counts > 0).double().mean(-1)


def nominal_kbps(n_q: int, codebook_size: int, frame_rate: float) -> float:
    """Bitrate in kbit/s of ``n_q`` levels of ``log2(K)``-bit indices at ``frame_rate`` frames/s."""
    return n_q * math.log2(codebook_size) * frame_rate / 1000.0


def entropy_kbps(counts: torch.Tensor, frame_rate: float, n_q: int | None = None) -> float:
    """Bitrate in kbit/s an ideal per-level entropy coder reaches on the first ``n_q`` levels."""
    bits = entropy_bits(counts)[: counts.shape[0] if n_q is None else n_q]
    return float(bits.sum()) * frame_rate / 1000.0


# ------------------------------------------------------------------ helpers


def _flat(reference: torch.Tensor, estimate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    if reference.shape != estimate.shape:
        raise ValueError(f"reference and estimate differ in shape: {tuple(reference.shape)} vs {tuple(estimate.shape)}")
    lead = tuple(reference.shape[:-1])
    return reference.float().reshape(-1, reference.shape[-1]), estimate.float().reshape(-1, estimate.shape[-1]), lead


def _power(spec: torch.Tensor) -> torch.Tensor:
    return spec.real.square() + spec.imag.square()


@lru_cache(maxsize=16)
def _mel(sample_rate: int, n_fft: int, n_mels: int) -> MelSpectrogram:
    return MelSpectrogram(sample_rate, n_fft, n_fft // 4, n_mels)


def _pair(reference: np.ndarray | torch.Tensor, estimate: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    ref, est = (
        np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s, dtype=np.float64).reshape(-1)
        for s in (reference, estimate)
    )
    if ref.shape != est.shape:
        raise ValueError(f"reference and estimate differ in length: {ref.shape[0]} vs {est.shape[0]}")
    return ref, est
