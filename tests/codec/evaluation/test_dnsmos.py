"""DNSMOS on real (eSpeak NG Telugu) speech: agreement with speechmos, noise sensitivity, resampling,
determinism, short-clip repetition, windowing, and input validation.

Every clip here is 5 s, so after DNSMOS repeats it to 10 s it is scored on one 9.01 s window (about
half a second of single-threaded model time per call).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from codec.data.espeak import Espeak
from codec.evaluation.dnsmos import MODEL_RATE, WINDOW_SAMPLES, DnsmosScores, _window_bounds, dnsmos, dnsmos_available

UNAVAILABLE = dnsmos_available()
needs_dnsmos = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"DNSMOS unavailable: {UNAVAILABLE}")

ESPEAK_RATE = 22050  # eSpeak NG's native rate
SECONDS = 5.0
SENTENCE = "నమస్కారం అండీ, మీరు ఎలా ఉన్నారు? ఈ రోజు వాతావరణం చాలా బాగుంది."


@pytest.fixture(scope="module")
def speech_22k() -> np.ndarray:
    """5 s of synthetic Telugu speech at 22.05 kHz, float32, peak 0.5."""
    with Espeak() as engine:
        engine.set_voice("te+m3")
        engine.set_prosody(160, 50, 50)
        engine.seed(1234)
        audio = engine.synthesize(SENTENCE).astype(np.float32) / 32768
    n = int(SECONDS * ESPEAK_RATE)
    assert audio.size >= n, f"utterance is only {audio.size / ESPEAK_RATE:.2f} s"
    audio = audio[:n]
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


@pytest.fixture(scope="module")
def speech(speech_22k) -> np.ndarray:
    """The same speech at 16 kHz, resampled with scipy's polyphase filter (not soxr, which dnsmos uses)."""
    audio = resample_poly(speech_22k, 320, 441).astype(np.float32)  # 16000 / 22050 = 320 / 441
    assert audio.size == int(SECONDS * MODEL_RATE)
    return audio


@pytest.fixture(scope="module")
def clean_scores(speech) -> DnsmosScores:
    return dnsmos(speech, MODEL_RATE)


def _in_range(scores: DnsmosScores) -> bool:
    return all(1.0 <= v <= 5.0 for v in (scores.p808_mos, scores.sig, scores.bak, scores.ovrl))


@needs_dnsmos
@pytest.mark.parametrize("personalized", [False, True])
def test_matches_speechmos_reference(speech, clean_scores, personalized):
    from speechmos import dnsmos as reference

    expected = reference.run(speech, MODEL_RATE, model_type="dnsmos_personalized" if personalized else "dnsmos")
    got = clean_scores if not personalized else dnsmos(speech, MODEL_RATE, personalized=True)
    assert got.p808_mos == pytest.approx(float(expected["p808_mos"]), abs=1e-5)
    assert got.sig == pytest.approx(float(expected["sig_mos"]), abs=1e-5)
    assert got.bak == pytest.approx(float(expected["bak_mos"]), abs=1e-5)
    assert got.ovrl == pytest.approx(float(expected["ovrl_mos"]), abs=1e-5)


@needs_dnsmos
def test_white_noise_at_0_db_lowers_ovrl_and_bak(speech, clean_scores):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(speech.size) * np.sqrt(np.mean(speech.astype(np.float64) ** 2))  # 0 dB SNR
    noisy = (speech + noise).astype(np.float32)
    assert np.abs(noisy).max() <= 1.0
    scores = dnsmos(noisy, MODEL_RATE)
    assert _in_range(clean_scores) and _in_range(scores), (clean_scores, scores)
    assert clean_scores.ovrl > scores.ovrl + 0.5, (clean_scores, scores)
    assert clean_scores.bak > scores.bak + 1.0, (clean_scores, scores)
    assert clean_scores.p808_mos > scores.p808_mos, (clean_scores, scores)


@needs_dnsmos
def test_same_input_gives_the_same_scores(speech, clean_scores):
    assert dnsmos(speech.copy(), MODEL_RATE) == clean_scores
    # float64 input is scored in float32 too
    assert dnsmos(speech.astype(np.float64), MODEL_RATE) == clean_scores


@needs_dnsmos
def test_22khz_input_is_resampled_and_scores_close_to_16khz(speech_22k, clean_scores):
    scores = dnsmos(speech_22k, ESPEAK_RATE)
    for name in ("p808_mos", "sig", "bak", "ovrl"):
        assert getattr(scores, name) == pytest.approx(getattr(clean_scores, name), abs=0.1), name


@needs_dnsmos
def test_short_clip_is_scored_as_itself_repeated(speech, clean_scores):
    # A 5 s clip is doubled to 10 s before windowing, so passing it doubled changes nothing.
    assert dnsmos(np.concatenate([speech, speech]), MODEL_RATE) == clean_scores


def test_windows_are_whole_and_start_every_second():
    assert _window_bounds(WINDOW_SAMPLES) == [(0, WINDOW_SAMPLES)]
    assert len(_window_bounds(11 * MODEL_RATE - 1)) == 1
    assert len(_window_bounds(11 * MODEL_RATE)) == 2
    # The reference drops windows 7..23, whose float end rounds one sample short: a 20 s clip is
    # scored on windows 0..6 only, a 60 s clip on 51 - 17 = 34.
    assert [start for start, _ in _window_bounds(20 * MODEL_RATE)] == [k * MODEL_RATE for k in range(7)]
    bounds = _window_bounds(60 * MODEL_RATE)
    assert len(bounds) == 34
    assert all(stop - start == WINDOW_SAMPLES and stop <= 60 * MODEL_RATE for start, stop in bounds)


@pytest.mark.parametrize(
    "audio, rate, message",
    [
        (np.zeros(0, np.float32), MODEL_RATE, "empty"),
        (np.array([0.1, np.nan, 0.2], np.float32), MODEL_RATE, "non-finite"),
        (np.array([0.1, np.inf], np.float64), MODEL_RATE, "non-finite"),
        (np.zeros((2, 100), np.float32), MODEL_RATE, "mono"),
        (np.zeros(100, np.int16), MODEL_RATE, "float"),
        (np.array([0.5, -1.5], np.float32), MODEL_RATE, r"\[-1, 1\]"),
        (np.zeros(100, np.float32), 0, "sample_rate"),
    ],
)
def test_rejects_bad_input_with_the_reason(audio, rate, message):
    with pytest.raises(ValueError, match=message):
        dnsmos(audio, rate)
