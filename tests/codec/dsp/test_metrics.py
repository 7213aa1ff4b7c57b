"""Every metric of codec/dsp/metrics.py against an independent numpy reference and on signals with known answers."""

import math

import numpy as np
import pytest
import torch

from codec.dsp import metrics as M
from codec.dsp.mel import mel_filterbank

RATE = 16000


def _noise(n=8000, seed=0, scale=0.1):
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32) * scale


def _t(x):
    return torch.from_numpy(np.asarray(x, dtype=np.float32))


# ---------------------------------------------------------------- numpy references


def ref_snr(r, e):
    return 10 * np.log10(np.sum(r.astype(np.float64) ** 2) / np.sum((r.astype(np.float64) - e) ** 2))


def ref_si_snr(r, e):
    r, e = r - r.mean(), e - e.mean()
    target = np.dot(e, r) / np.dot(r, r) * r
    return 10 * np.log10(np.sum(target**2) / np.sum((e - target) ** 2))


def ref_segsnr(r, e, frame):
    values = []
    for start in range(0, len(r) - frame + 1, frame):
        s = np.sum(r[start : start + frame].astype(np.float64) ** 2)
        n = np.sum((r[start : start + frame].astype(np.float64) - e[start : start + frame]) ** 2)
        if n == 0:
            values.append(35.0)
        elif s == 0:
            values.append(-10.0)
        else:
            values.append(min(35.0, max(-10.0, 10 * math.log10(s / n))))
    return float(np.mean(values))


def ref_stft(x, n_fft):
    """Centred, reflect-padded, periodic-Hann STFT magnitude ``[bins, frames]`` in float64."""
    hop = n_fft // 4
    padded = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([padded[i : i + n_fft] * window for i in range(0, len(padded) - n_fft + 1, hop)], axis=1)
    return np.abs(np.fft.rfft(frames, axis=0))


def ref_mel_distance(r, e, sizes=(256, 512, 1024, 2048)):
    out = []
    for n in sizes:
        fb = mel_filterbank(RATE, n, 64).double().numpy()
        mr, me = fb @ ref_stft(r, n), fb @ ref_stft(e, n)
        out.append(np.mean(np.abs(np.log10(np.maximum(mr, 1e-5)) - np.log10(np.maximum(me, 1e-5)))))
    return float(np.mean(out))


def ref_lsd(r, e):
    pr, pe = (np.maximum(ref_stft(s, 512) ** 2, 1e-10) for s in (r, e))
    return float(np.mean(np.sqrt(np.mean((10 * np.log10(pr) - 10 * np.log10(pe)) ** 2, axis=0))))


def ref_mrstft(r, e, sizes=(512, 1024, 2048)):
    out = []
    for n in sizes:
        mr, me = (np.sqrt(np.maximum(ref_stft(s, n) ** 2, 1e-7)) for s in (r, e))
        out.append(np.linalg.norm(mr - me) / np.linalg.norm(mr) + np.mean(np.abs(np.log(mr) - np.log(me))))
    return float(np.mean(out))


# ---------------------------------------------------------------- signal metrics


@pytest.mark.parametrize("seed", [0, 1])
def test_every_metric_matches_its_numpy_reference_on_random_signals(seed):
    r = _noise(6000, seed)
    e = r + _noise(6000, seed + 10, 0.05) + 0.02 * np.sin(np.arange(6000) / 7).astype(np.float32)
    rt, et = _t(r), _t(e)
    assert float(M.snr(rt, et)) == pytest.approx(ref_snr(r, e), abs=1e-3)
    assert float(M.si_snr(rt, et)) == pytest.approx(ref_si_snr(r, e), abs=1e-3)
    assert float(M.segmental_snr(rt, et, RATE)) == pytest.approx(ref_segsnr(r, e, 320), abs=1e-4)
    assert float(M.multiscale_mel_distance(rt, et, RATE)) == pytest.approx(ref_mel_distance(r, e), rel=1e-4)
    assert float(M.log_spectral_distance(rt, et)) == pytest.approx(ref_lsd(r, e), rel=1e-4)
    assert float(M.multi_resolution_stft_distance(rt, et)) == pytest.approx(ref_mrstft(r, e), rel=1e-4)


def test_batched_shapes_give_the_per_signal_values():
    r = np.stack([_noise(2400, s) for s in range(3)]).reshape(3, 1, 2400)
    e = r + np.stack([_noise(2400, 10 + s, 0.01 * (s + 1)) for s in range(3)]).reshape(3, 1, 2400)
    for fn in (
        M.snr,
        M.si_snr,
        lambda a, b: M.segmental_snr(a, b, RATE),
        lambda a, b: M.multiscale_mel_distance(a, b, RATE),
        M.log_spectral_distance,
        M.multi_resolution_stft_distance,
    ):
        batched = fn(_t(r), _t(e))
        assert batched.shape == (3, 1)
        single = torch.stack([fn(_t(r[i, 0]), _t(e[i, 0])) for i in range(3)])
        torch.testing.assert_close(batched[:, 0], single, rtol=1e-5, atol=1e-5)


def test_identity_gives_capped_ratios_and_zero_distances():
    x = _t(_noise())
    # Only eps = 1e-8 in numerator and denominator caps them: 10 log10(sum x^2 / 1e-8) ~ 99 dB here.
    assert float(M.snr(x, x)) > 90 and float(M.si_snr(x, x)) > 90
    assert float(M.segmental_snr(x, x, RATE)) == 35.0
    for distance in (
        M.multiscale_mel_distance(x, x, RATE),
        M.log_spectral_distance(x, x),
        M.multi_resolution_stft_distance(x, x),
    ):
        assert float(distance) == 0.0


@pytest.mark.parametrize("gain", [0.5, 2.0])
def test_a_known_gain_gives_the_expected_values(gain):
    x = _noise(16000)
    xt, yt = _t(x), _t(gain * x)
    assert float(M.snr(xt, yt)) == pytest.approx(-20 * math.log10(abs(1 - gain)), abs=1e-3)
    assert float(M.segmental_snr(xt, yt, RATE)) == pytest.approx(-20 * math.log10(abs(1 - gain)), abs=1e-3)
    assert float(M.si_snr(xt, yt)) > 80  # a gain is no error for SI-SNR
    assert float(M.multiscale_mel_distance(xt, yt, RATE)) == pytest.approx(abs(math.log10(gain)), rel=1e-3)
    assert float(M.log_spectral_distance(xt, yt)) == pytest.approx(abs(20 * math.log10(gain)), rel=1e-4)
    assert float(M.multi_resolution_stft_distance(xt, yt)) == pytest.approx(
        abs(1 - gain) + abs(math.log(gain)), rel=1e-3
    )


def test_a_known_delay_gives_the_expected_snr():
    # 100 Hz has exactly 160 samples per period: a circular delay of d samples leaves an error of
    # amplitude 2 sin(w d / 2), so SNR = -10 log10(2 - 2 cos(w d)).
    n, d = 16000, 8
    w = 2 * np.pi * 100 / RATE
    x = np.sin(w * np.arange(n))
    y = np.roll(x, d)
    expected = -10 * math.log10(2 - 2 * math.cos(w * d))
    assert float(M.snr(_t(x), _t(y))) == pytest.approx(expected, abs=1e-3)
    assert float(M.si_snr(_t(x), _t(y))) == pytest.approx(ref_si_snr(x, y), abs=1e-3)


def test_si_snr_ignores_scale_but_snr_does_not():
    r, e = _noise(8000, 0), _noise(8000, 0) + _noise(8000, 1, 0.03)
    base = float(M.si_snr(_t(r), _t(e)))
    for scale in (0.1, 3.0, -2.0):
        assert float(M.si_snr(_t(r), _t(scale * e))) == pytest.approx(base, abs=1e-3)
    assert float(M.snr(_t(r), _t(3.0 * e))) < base - 5


def test_segmental_snr_by_hand():
    # 4 frames of 2 samples (frame_seconds * rate = 2); the trailing sample is dropped.
    r = torch.tensor([1.0, 1.0, 0.0, 0.0, 3.0, 4.0, 1.0, 0.0, 9.0])
    e = torch.tensor([1.0, 1.0, 0.5, 0.0, 3.0, 3.0, 0.0, 0.0, 0.0])
    # frame 1 exact -> 35; frame 2 silent reference with error -> -10; frame 3: 25 / 1 -> 13.98 dB;
    # frame 4: 1 / 1 -> 0 dB.
    expected = (35.0 - 10.0 + 10 * math.log10(25.0) + 0.0) / 4
    assert float(M.segmental_snr(r, e, sample_rate=100, frame_seconds=0.02)) == pytest.approx(expected, abs=1e-5)
    # Ratios beyond the clamp: 40 dB counts as 35, -30 dB as -10.
    r2 = torch.tensor([1.0, 1.0, 0.01, 0.01])
    e2 = torch.tensor([1.01, 1.0, 0.31, 0.01])
    assert float(M.segmental_snr(r2, e2, sample_rate=100, frame_seconds=0.02)) == pytest.approx((35 - 10) / 2)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="differ in shape"):
        M.log_spectral_distance(torch.zeros(100), torch.zeros(101))


# ---------------------------------------------------------------- STOI and PESQ


def _speechlike(seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(140 * (1 + 0.1 * np.sin(2 * np.pi * 1.3 * t))) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 0.5  # syllables with pauses
    return (0.3 * voiced * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def test_stoi_is_one_for_identity_and_drops_with_noise():
    x = _speechlike(1.5)
    rng = np.random.default_rng(1)
    clean = M.stoi(x, x, RATE)
    assert clean.error is None and clean.value == pytest.approx(1.0, abs=1e-6)
    scores = [M.stoi(x, x + s * rng.standard_normal(x.size), RATE).value for s in (0.02, 0.3)]
    assert 1.0 > scores[0] > scores[1]


def test_stoi_of_too_short_speech_is_nan_with_a_reason():
    x = _speechlike(0.2)
    result = M.stoi(x, x, RATE)
    assert math.isnan(result.value) and "non-silent frames" in result.error


def test_pesq_is_near_its_maximum_for_identity_and_drops_with_noise():
    x = _speechlike()
    rng = np.random.default_rng(2)
    assert M.pesq_wb(x, x, RATE).value > 4.5
    noisy = [M.pesq_wb(x, x + s * rng.standard_normal(x.size), RATE) for s in (0.003, 0.05)]
    assert all(r.error is None for r in noisy)
    assert 4.5 > noisy[0].value > noisy[1].value >= 1.0


def test_pesq_resamples_other_rates_and_reports_failures_as_nan():
    x = _speechlike()
    import soxr

    x22 = soxr.resample(x, RATE, 22050)
    assert M.pesq_wb(x22, x22, 22050).value > 4.5
    silent = M.pesq_wb(np.zeros(RATE), np.zeros(RATE), RATE)
    assert math.isnan(silent.value) and "silent" in silent.error
    short = M.pesq_wb(x[:100], x[:100], RATE)
    assert math.isnan(short.value) and "BufferTooShortError" in short.error


def test_pesq_errors_of_the_package_become_nan_with_the_reason(monkeypatch):
    import pesq

    def no_utterances(*args, **kwargs):
        raise pesq.NoUtterancesError("No utterances detected")

    monkeypatch.setattr(pesq, "pesq", no_utterances)
    x = _speechlike(1.0)
    result = M.pesq_wb(x, x, RATE)
    assert math.isnan(result.value) and result.error == "pesq: NoUtterancesError: No utterances detected"


# ---------------------------------------------------------------- code usage


def test_code_histograms_count_each_level():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, size=(3, 2, 40))
    counts = M.code_histograms(torch.from_numpy(codes), 16)
    assert counts.shape == (2, 16) and counts.dtype == torch.float64
    for level in range(2):
        np.testing.assert_array_equal(counts[level].numpy(), np.bincount(codes[:, level].ravel(), minlength=16))


def test_entropy_perplexity_usage_and_bitrates_of_a_known_distribution():
    counts = torch.zeros(2, 8, dtype=torch.float64)
    counts[0, :4] = 25  # uniform over 4 of 8 entries: 2 bits
    counts[1, :3] = torch.tensor([50.0, 25.0, 25.0])  # 1/2, 1/4, 1/4: 1.5 bits
    torch.testing.assert_close(M.entropy_bits(counts), torch.tensor([2.0, 1.5], dtype=torch.float64))
    torch.testing.assert_close(M.perplexity(counts), torch.tensor([4.0, 2**1.5], dtype=torch.float64))
    torch.testing.assert_close(M.used_fraction(counts), torch.tensor([0.5, 0.375], dtype=torch.float64))
    assert M.entropy_kbps(counts, 50.0) == pytest.approx((2.0 + 1.5) * 50 / 1000)
    assert M.entropy_kbps(counts, 50.0, n_q=1) == pytest.approx(2.0 * 50 / 1000)
    assert M.nominal_kbps(2, 8, 50.0) == pytest.approx(2 * 3 * 50 / 1000)
    assert M.nominal_kbps(12, 1024, 50.0) == pytest.approx(6.0)


def test_a_level_that_never_varies_has_zero_entropy_and_unit_perplexity():
    counts = torch.zeros(1, 32, dtype=torch.float64)
    counts[0, 7] = 100
    assert float(M.entropy_bits(counts)[0]) == 0.0 and float(M.perplexity(counts)[0]) == 1.0


def test_cosine_similarity_of_vectors():
    a = np.array([1.0, 2.0, 0.0, 3.0])
    assert M.cosine_similarity(a, a) == pytest.approx(1.0)
    assert M.cosine_similarity(a, 5 * a) == pytest.approx(1.0)  # scale-free
    assert M.cosine_similarity(a, -a) == pytest.approx(-1.0)
    assert M.cosine_similarity([1.0, 0.0], [0.0, 2.0]) == 0.0
    assert M.cosine_similarity(_t(a), torch.ones(4)) == pytest.approx(6 / (math.sqrt(14) * 2))  # tensors too
    assert math.isnan(M.cosine_similarity(a, np.zeros(4)))
    with pytest.raises(ValueError):
        M.cosine_similarity(a, a[:3])
