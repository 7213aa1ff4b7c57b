"""Speaker similarity (codec/evaluation/speaker.py): Resemblyzer's embeddings, loaded with weights_only=True, high for
the same voice lightly altered and clearly lower for another speaker."""

import json
import math
import os
import warnings

import numpy as np
import pytest
import soundfile as sf
import soxr

from codec.dsp.metrics import cosine_similarity
from codec.evaluation import speaker as S
from tests.codec.evaluation.support import RATE, speechlike
from tests.conftest import SHARED_CORPUS

pytestmark = pytest.mark.skipif(S.speaker_encoder_available() is not None, reason=str(S.speaker_encoder_available()))

SENTENCES = (
    "నమస్కారం అండీ, మీరు ఎలా ఉన్నారు? ఈ రోజు వాతావరణం చాలా బాగుంది.",
    "తెలుగు భాష చాలా అందమైన భాష. మనం అందరం కలిసి పని చేద్దాం.",
)


def _espeak(voice: str, pitch: int, text: str) -> np.ndarray:
    from codec.data.espeak import Espeak

    with Espeak() as engine:
        engine.set_voice(voice)
        engine.set_prosody(150, pitch, 60)
        engine.seed(7)
        audio = engine.synthesize(text).astype(np.float32) / 32768
        rate = engine.sample_rate
    return soxr.resample(audio, rate, RATE).astype(np.float32)


def _mild_versions(x: np.ndarray) -> list[np.ndarray]:
    """The clip with noise 30 dB under it, and the clip band-limited to 4 kHz (resampled to 8 kHz and back)."""
    noise = np.random.default_rng(0).standard_normal(x.size).astype(np.float32)
    noisy = x + noise * np.sqrt(np.mean(x**2)) * 10 ** (-30 / 20)
    narrow = soxr.resample(soxr.resample(x, RATE, 8000), 8000, RATE)[: x.size].astype(np.float32)
    return [noisy, narrow]


def test_embeddings_are_resemblyzers_own():
    """The same preprocessing and network as the package's preprocess_wav + VoiceEncoder.embed_utterance."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # resemblyzer imports scipy.ndimage.morphology
        from resemblyzer import VoiceEncoder, preprocess_wav

    theirs = VoiceEncoder("cpu", verbose=False)
    for seconds, seed in ((0.8, 0), (3.7, 1)):  # one partial; several, the last one padded
        x = speechlike(seconds, seed=seed)
        np.testing.assert_allclose(S.embed(x, RATE), theirs.embed_utterance(preprocess_wav(x)), atol=1e-5)
    x = speechlike(2.0, seed=2, rate=22050)  # resampled first (with soxr here, librosa there)
    assert cosine_similarity(S.embed(x, 22050), theirs.embed_utterance(preprocess_wav(x, 22050))) > 0.999


def test_the_checkpoint_loads_as_weights_only():
    encoder = S.load_encoder()
    assert S.weights_path().name == "pretrained.pt" and not encoder.training
    assert sum(p.numel() for p in encoder.parameters()) == 1_423_616  # 3-layer LSTM 40 -> 256, linear 256 -> 256


def test_espeak_voices_same_voice_high_other_voice_low():
    male = _espeak("te+m1", 35, SENTENCES[0])
    male_other_sentence = _espeak("te+m1", 35, SENTENCES[1])
    female = _espeak("te+f2", 70, SENTENCES[1])
    mild = S.speaker_similarities(male, _mild_versions(male), RATE)
    assert all(m.error is None and m.value > 0.9 for m in mild), mild
    # Measured: the same voice on another sentence 0.93, the other voice 0.51.
    same, other = S.speaker_similarities(male, [male_other_sentence, female], RATE)
    assert same.value > 0.85 and other.value < 0.7 and same.value - other.value > 0.25


@pytest.mark.skipif(not os.path.isdir(SHARED_CORPUS), reason="real ULCA corpus (chai-bisket-te) not present")
def test_real_speakers_of_two_videos():
    """The longest male clip, and the longest female clip of another video: two speakers of real Telugu speech."""
    records = json.loads(open(os.path.join(SHARED_CORPUS, "data.json"), encoding="utf-8").read())

    def video(record):
        return record["audioFilename"].split("file-id")[-1]

    def longest(gender, exclude=None):
        kept = [r for r in records if r["gender"] == gender and video(r) != exclude]
        return max(kept, key=lambda r: (r["duration"], r["audioFilename"]))

    def load(record):  # the first 6 s (the longest clips are 14-15 s): enough speech, a third of the compute
        audio, rate = sf.read(os.path.join(SHARED_CORPUS, record["audioFilename"]), dtype="float32")
        audio = audio.mean(axis=1) if audio.ndim > 1 else audio
        audio = soxr.resample(audio, rate, RATE).astype(np.float32) if rate != RATE else audio
        return audio[: 6 * RATE]

    male = longest("male")
    x, y = load(male), load(longest("female", exclude=video(male)))
    mild = S.speaker_similarities(x, _mild_versions(x), RATE)
    assert all(m.value > 0.9 for m in mild), mild  # measured 0.980 (noise) and 0.976 (4 kHz band)
    (other,) = S.speaker_similarities(x, [y], RATE)
    assert other.value < 0.75  # measured 0.57 (whole clips of one video: 0.90 on average, of two videos 0.74)


def test_silence_and_no_speech_are_nan_with_a_reason():
    x = speechlike(1.5)
    silent, ok = S.speaker_similarities(x, [np.zeros_like(x), x], RATE)
    assert math.isnan(silent.value) and silent.error == "speaker_similarity: silent signal"
    assert ok.value == pytest.approx(1.0, abs=1e-6) and ok.error is None
    hum = (0.001 * np.random.default_rng(0).standard_normal(x.size)).astype(np.float32)  # quiet noise: no speech
    for result in S.speaker_similarities(hum, [x, x], RATE):
        assert math.isnan(result.value) and result.error is not None and result.error.endswith("(reference)")
