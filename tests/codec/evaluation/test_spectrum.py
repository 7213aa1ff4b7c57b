"""The spectrum check: average spectra, and artefacts found (tones, DC, top band) or not (level changes)."""

import numpy as np
import pytest

from codec.evaluation.spectrum import average_power_spectrum, excess_db, fft_size, spectrum_check

RATE = 16000


def speech_like(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Pink-ish noise with a harmonic series, nothing under 60 Hz: a broad spectrum like speech's long-term
    average after prepare's DC removal."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    hz = np.arange(n // 2 + 1) * RATE / n
    spectrum = np.fft.rfft(rng.standard_normal(n)) / np.maximum(1.0, hz / 50.0) ** 0.5 * (hz >= 60)
    t = np.arange(n) / RATE
    phase = 2 * np.pi * np.cumsum(200 * (1 + 0.05 * np.sin(2 * np.pi * t))) / RATE  # f0 gliding around 200 Hz
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 8))
    x = 0.05 * np.fft.irfft(spectrum, n) + 0.3 * harmonics
    x -= x.mean()
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def check(inputs, outputs, **kw):
    return spectrum_check(average_power_spectrum(inputs), average_power_spectrum(outputs), RATE, **kw)


def test_average_spectrum_of_a_tone_peaks_at_its_bin():
    t = np.arange(RATE) / RATE
    spectrum = average_power_spectrum([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t[:500])])
    assert spectrum.shape == (513,)
    assert np.argmax(spectrum) == round(1000 / (RATE / 1024))


def test_excess_is_the_ratio_in_db_with_silent_bins_equal():
    reference = np.array([1.0, 1.0, 0.0, 0.0, 4.0, 1.0, 1.0, 1.0])
    output = np.array([2.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    excess = excess_db(reference, output, floor_db=-20)  # floor: 4 x 10^-2
    assert excess[0] == pytest.approx(3.01, abs=0.01) and excess[1] == 0 and excess[2] == 0
    assert excess[3] == pytest.approx(10 * np.log10(1 / 0.04)) and excess[4] == pytest.approx(-6.02, abs=0.01)


def test_identical_and_rescaled_outputs_pass():
    signals = [speech_like(seed=s) for s in range(3)]
    same = check(signals, signals)
    assert same.ok and same.peaks == [] and same.dc_excess_db == 0 and same.level_excess_db == 0
    quieter = check(signals, [0.5 * s for s in signals])
    assert quieter.ok and quieter.level_excess_db == pytest.approx(-6.02, abs=0.01)
    assert abs(quieter.dc_excess_db) < 0.01 and abs(quieter.nyquist_excess_db) < 0.01


@pytest.mark.parametrize("tone_hz", [110.0, 2000.0, 6000.0])
def test_a_tone_the_input_lacks_is_flagged_at_its_frequency(tone_hz):
    signals = [speech_like(seed=s) for s in range(3)]
    t = np.arange(signals[0].size) / RATE
    tone = 0.02 * np.sin(2 * np.pi * tone_hz * t)
    found = check(signals, [s + tone for s in signals])
    assert not found.ok
    assert abs(found.peaks[0].frequency_hz - tone_hz) <= RATE / 1024
    assert found.peaks[0].excess_db > 6


def test_dc_offset_and_excess_near_nyquist_are_flagged():
    rng = np.random.default_rng(1)
    signals = [speech_like(seed=s) for s in range(3)]
    offset = check(signals, [s + 0.02 for s in signals])
    assert not offset.ok and offset.dc_excess_db > 6 and offset.nyquist_excess_db < 1
    hiss = np.fft.irfft(
        np.where(
            np.arange(signals[0].size // 2 + 1) > 0.95 * signals[0].size // 2,
            np.fft.rfft(rng.standard_normal(signals[0].size)),
            0,
        ),
        signals[0].size,
    )
    top = check(signals, [s + 0.05 * hiss.astype(np.float32) for s in signals])
    assert not top.ok and top.nyquist_excess_db > 6 and abs(top.dc_excess_db) < 1


def test_bad_spectra_are_refused():
    with pytest.raises(ValueError):
        spectrum_check(np.ones(10), np.ones(12), RATE)
    with pytest.raises(ValueError):
        average_power_spectrum([])


def test_a_copy_one_frame_late_ripples_at_the_frame_rate_and_is_flagged():
    signals = [speech_like(seed=s) for s in range(3)]
    hop = 320  # 50 frames/s at 16 kHz
    ghost = [x + 0.3 * np.concatenate([np.zeros(hop, np.float32), x[:-hop]]) for x in signals]
    found = check(signals, ghost, frame_rates=[50.0])
    # |1 + a exp(-j w hop)|^2 in dB has a fundamental of 20 a / ln 10; the average spectrum's 1024-point Hann
    # window smooths it by the window's autocorrelation at the hop.
    window = np.hanning(1025)[:-1]
    expected = 20 / np.log(10) * 0.3 * (window[:-hop] * window[hop:]).sum() / (window * window).sum()
    assert found.frame_ripple_db == pytest.approx(expected, rel=0.15) and not found.ok
    clean = check(signals, signals, frame_rates=[50.0])
    assert clean.frame_ripple_db < 0.1 and clean.ok
    other = check(signals, ghost, frame_rates=[75.0])  # the ripple is tied to its period
    assert other.frame_ripple_db < 0.5
    assert check(signals, ghost, frame_rates=[200.0, 50.0]).frame_ripple_db == found.frame_ripple_db  # the strongest
    assert np.isnan(check(signals, ghost).frame_ripple_db)  # not asked for
    with pytest.raises(ValueError, match="finer"):
        check(signals, ghost, frame_rates=[20.0])


def test_a_weak_high_band_is_measured_and_flagged():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(RATE * 2)
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size, 1 / RATE)
    dull = np.fft.irfft(spectrum * np.where(freqs >= 1000, 10 ** (-5 / 20), 1.0), x.size)  # -5 dB above 1 kHz
    found = spectrum_check(average_power_spectrum([x]), average_power_spectrum([dull]), RATE)
    assert found.high_band_db == pytest.approx(-5.0, abs=0.5) and not found.ok
    same = spectrum_check(average_power_spectrum([x]), average_power_spectrum([0.5 * x]), RATE)
    assert abs(same.high_band_db) < 0.1 and same.ok


def test_a_slower_frame_rate_gets_bins_fine_enough_for_its_ripple():
    assert fft_size(RATE, [50.0, 200.0]) == 1024  # 15.6 Hz bins: what every 50 frames/s run was checked with
    assert fft_size(RATE, []) == 1024
    n = fft_size(RATE, [25.0, 100.0])  # a 25 frames/s codec (hop 640)
    assert n == 2048
    signals = [speech_like(seed=s) for s in range(3)]
    hop = 640
    ghost = [x + 0.3 * np.concatenate([np.zeros(hop, np.float32), x[:-hop]]) for x in signals]
    with pytest.raises(ValueError, match="finer"):
        check(signals, ghost, frame_rates=[25.0])  # 1024 points cannot see it
    reference = average_power_spectrum(signals, n)
    found = spectrum_check(reference, average_power_spectrum(ghost, n), RATE, frame_rates=[25.0])
    window = np.hanning(n + 1)[:-1]
    expected = 20 / np.log(10) * 0.3 * (window[:-hop] * window[hop:]).sum() / (window * window).sum()
    assert found.frame_ripple_db == pytest.approx(expected, rel=0.2) and not found.ok
    clean = spectrum_check(reference, average_power_spectrum(signals, n), RATE, frame_rates=[25.0])
    assert clean.frame_ripple_db < 0.1 and clean.ok
