import math

import numpy as np
import pytest
import torch

from codec.dsp.mel import MelSpectrogram, hz_to_mel, magnitude, mel_band_edges, mel_filterbank, mel_to_hz, stft


def test_mel_scales_at_known_points():
    # Slaney: 3 mels per 200 Hz below 1 kHz, then 27 mels per factor 6.4.
    np.testing.assert_allclose(hz_to_mel([0.0, 200.0, 1000.0, 6400.0]), [0.0, 3.0, 15.0, 42.0], atol=1e-12)
    # HTK: 2595 * log10(1 + f / 700), so 700 Hz -> 2595 * log10(2).
    np.testing.assert_allclose(hz_to_mel(700.0, "htk"), 2595.0 * math.log10(2.0))
    freqs = np.array([0.0, 123.0, 999.0, 1000.0, 1001.0, 7999.0])
    for scale in ("slaney", "htk"):
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs, scale), scale), freqs, atol=1e-9)
        assert np.all(np.diff(hz_to_mel(freqs, scale)) > 0)
    with pytest.raises(ValueError):
        hz_to_mel(1.0, "bark")


def test_hand_computed_filterbank():
    # Below 1 kHz the Slaney scale is linear: 3 filters over 0..1000 Hz have edges every 250 Hz;
    # at 8 kHz with n_fft=64 the bins are 125 Hz apart, so each triangle spans 4 bins.
    fb = mel_filterbank(8000, 64, 3, 0.0, 1000.0, scale="slaney", norm=None)
    expected = torch.zeros(3, 33)
    expected[0, 1:4] = torch.tensor([0.5, 1.0, 0.5])
    expected[1, 3:6] = torch.tensor([0.5, 1.0, 0.5])
    expected[2, 5:8] = torch.tensor([0.5, 1.0, 0.5])
    torch.testing.assert_close(fb, expected)
    # Slaney normalisation: each triangle scaled by 2 / (f_right - f_left) = 2 / 500 Hz.
    torch.testing.assert_close(mel_filterbank(8000, 64, 3, 0.0, 1000.0, norm="slaney"), expected * (2.0 / 500.0))


def _reference_filterbank(sr, n_fft, n_mels, scale):
    """Independent element-by-element triangles from the closed-form mel formulas."""
    step = math.log(6.4) / 27.0

    def to_mel(f):
        if scale == "htk":
            return 2595.0 * math.log10(1.0 + f / 700.0)
        return 3.0 * f / 200.0 if f < 1000.0 else 15.0 + math.log(f / 1000.0) / step

    def to_hz(m):
        if scale == "htk":
            return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
        return 200.0 * m / 3.0 if m < 15.0 else 1000.0 * math.exp(step * (m - 15.0))

    top = to_mel(sr / 2.0)
    edges = [to_hz(top * i / (n_mels + 1)) for i in range(n_mels + 2)]
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        for k in range(n_fft // 2 + 1):
            f = k * sr / n_fft
            if lo < f <= c:
                out[m, k] = (f - lo) / (c - lo)
            elif c < f < hi:
                out[m, k] = (hi - f) / (hi - c)
    return out, edges


@pytest.mark.parametrize("scale", ["slaney", "htk"])
def test_filterbank_matches_independent_reference(scale):
    fb = mel_filterbank(16000, 512, 40, scale=scale, norm=None).double().numpy()
    ref, edges = _reference_filterbank(16000, 512, 40, scale)
    np.testing.assert_allclose(fb, ref, atol=1e-6)
    np.testing.assert_allclose(mel_band_edges(40, 0.0, 8000.0, scale), edges, rtol=1e-10)
    # Each filter peaks at the bin nearest its centre frequency.
    bin_hz = 16000 / 512
    for m in range(40):
        centre = edges[m + 1]
        nearest = int(round(centre / bin_hz))
        if abs(centre - nearest * bin_hz) < 0.25 * bin_hz:  # avoid ties between two bins
            assert fb[m].argmax() == nearest


def test_filters_partition_unity_and_slaney_filters_have_unit_area():
    fb = mel_filterbank(16000, 1024, 64, norm=None).numpy()
    edges = mel_band_edges(64, 0.0, 8000.0)
    freqs = np.linspace(0, 8000, 513)
    inside = (freqs >= edges[1]) & (freqs <= edges[-2])  # between the first and last peaks
    np.testing.assert_allclose(fb[:, inside].sum(axis=0), 1.0, atol=1e-6)
    area = mel_filterbank(16000, 1024, 64, norm="slaney").numpy().sum(axis=1) * (16000 / 1024)
    wide = (edges[2:] - edges[:-2]) > 20 * (16000 / 1024)  # many bins per triangle: sum ~ integral
    np.testing.assert_allclose(area[wide], 1.0, rtol=0.02)


def test_mel_spectrogram_of_a_sine_peaks_in_the_right_band():
    sr, freq = 16000, 1500.0
    t = torch.arange(sr // 2) / sr
    x = torch.sin(2 * math.pi * freq * t).view(1, 1, -1)
    mel = MelSpectrogram(sr, n_fft=1024, hop_length=256, n_mels=64, norm=None)
    spec = mel(x)
    assert spec.shape == (1, 64, sr // 2 // 256 + 1)
    centres = mel_band_edges(64, 0.0, sr / 2)[1:-1]
    assert spec[0, :, 5].argmax().item() == int(np.abs(centres - freq).argmin())


def test_stft_is_float32_under_bf16_autocast():
    x = torch.randn(2, 1, 4000)
    window = torch.hann_window(512)
    ref = magnitude(stft(x, 512, 128, window))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = magnitude(stft(x.bfloat16(), 512, 128, window))
        mel = MelSpectrogram(16000, 512, 128, 40)(x)
    assert got.dtype == torch.float32 and mel.dtype == torch.float32
    torch.testing.assert_close(got, magnitude(stft(x.bfloat16().float(), 512, 128, window)))
    assert ref.shape == (2, 257, 4000 // 128 + 1)
