"""eSpeak NG corpus synthesis: sentence list, planning, audio, ULCA metadata, determinism."""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from codec.config.convert import ConfigError, from_dict
from codec.config.synth import SpeakerVariant, SynthConfig
from codec.data.synth import load_sentences, plan_utterances, synthesize_corpus

TINY_SENTENCES = [
    "నమస్కారం అండీ, మీరు ఎలా ఉన్నారు?",
    "ఈ రోజు వాతావరణం చాలా బాగుంది.",
    "రైలు సాయంత్రం నాలుగు గంటలకు వస్తుంది.",
]
# Same variant at two pitches, plus another variant; every speaker reads all three sentences.
TINY = SynthConfig(
    sentences="unused",
    sentences_per_speaker=3,
    speakers=[
        SpeakerVariant(name="low", variant="m3", gender="male", pitch=15, rate=160, range=40),
        SpeakerVariant(name="high", variant="m3", gender="male", pitch=85, rate=160, range=40),
        SpeakerVariant(name="fem", variant="f2", gender="female", pitch=60, rate=160, range=50),
    ],
)
SEED = 1234


def _is_telugu(ch: str) -> bool:
    return "\u0c00" <= ch <= "\u0c7f"


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"), wav.getframerate()


def _median_f0(audio: np.ndarray, sr: int) -> float:
    """Median F0 in Hz over clearly voiced 40 ms frames (autocorrelation peak in 60..400 Hz)."""
    x = audio.astype(np.float64) / 32768.0
    frame, lo, hi = int(0.04 * sr), int(sr / 400), int(sr / 60)
    f0s = []
    for start in range(0, len(x) - frame, frame // 2):
        seg = x[start : start + frame] - x[start : start + frame].mean()
        ac = np.correlate(seg, seg, "full")[frame - 1 :]
        if ac[0] <= 1e-4:
            continue
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] / ac[0] > 0.6:
            f0s.append(sr / lag)
    assert len(f0s) > 10, "too few voiced frames to estimate F0"
    return float(np.median(f0s))


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    summary = synthesize_corpus(TINY, TINY_SENTENCES, out, SEED)
    assert (summary.utterances, summary.speakers, summary.sample_rate) == (9, 3, 22050)
    return out


def test_sentence_file_has_300_distinct_telugu_lines(repo_root):
    sentences = load_sentences(Path(repo_root) / "data" / "te_sentences.txt")  # raises on repeats
    assert len(sentences) >= 300
    for s in sentences:
        letters = [c for c in s if c.isalpha() or _is_telugu(c)]
        assert sum(map(_is_telugu, letters)) >= 0.9 * len(letters), s
    words = [len(s.split()) for s in sentences]
    assert min(words) <= 3 and max(words) >= 20  # short phrases up to long sentences
    assert sum(s.endswith("?") for s in sentences) >= 20  # questions


def test_load_sentences_skips_comments_and_rejects_repeats(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("# header\n\n  ఒకటి  \nరెండు\n", encoding="utf-8")
    assert load_sentences(path) == ["ఒకటి", "రెండు"]
    path.write_text("ఒకటి\nరెండు\nఒకటి\n", encoding="utf-8")
    with pytest.raises(ValueError, match="repeated"):
        load_sentences(path)
    path.write_text("# only a comment\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no sentences"):
        load_sentences(path)


def test_plan_is_seeded_and_differs_per_speaker():
    sentences = [f"వాక్యం {i}" for i in range(50)]
    config = SynthConfig("unused", 10, TINY.speakers[:2])
    plan = plan_utterances(config, sentences, SEED)
    assert plan == plan_utterances(config, sentences, SEED)
    texts = {name: [u.text for u in plan if u.speaker.name == name] for name in ("low", "high")}
    assert all(len(set(t)) == 10 for t in texts.values())  # no repeats within a speaker
    assert texts["low"] != texts["high"]
    other = [u.text for u in plan_utterances(config, sentences, SEED + 1) if u.speaker.name == "low"]
    assert other != texts["low"]
    # A speaker's picks depend on its name, not on who else is in the config.
    alone = plan_utterances(SynthConfig("unused", 10, TINY.speakers[1:2]), sentences, SEED)
    assert [u.text for u in alone] == texts["high"]
    with pytest.raises(ValueError, match="exceeds"):
        plan_utterances(SynthConfig("unused", 51, TINY.speakers[:1]), sentences, SEED)


def test_speaker_validation_reports_the_bad_key():
    good = {"name": "te_x", "variant": "m1", "gender": "male", "pitch": 40, "rate": 150}
    assert from_dict(SpeakerVariant, good).voice == "te+m1"
    with pytest.raises(ConfigError, match="pitch"):
        from_dict(SpeakerVariant, {**good, "pitch": 120})
    with pytest.raises(ConfigError, match="rate"):
        from_dict(SpeakerVariant, {**good, "rate": 20})
    with pytest.raises(ConfigError, match="unique"):
        from_dict(SynthConfig, {"sentences": "x", "sentences_per_speaker": 1, "speakers": [good, good]})


def test_audio_is_speech_at_native_rate(tiny_corpus):
    wavs = sorted((tiny_corpus / "wavs").glob("*.wav"))
    assert len(wavs) == 9
    for path in wavs:
        audio, sr = _read_wav(path)
        assert sr == 22050
        assert 0.5 < len(audio) / sr < 10.0
        rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
        assert rms > 300 and np.abs(audio).max() > 3000  # clearly audible, not near-silence


def test_metadata_is_valid_ulca(tiny_corpus):
    params = json.loads((tiny_corpus / "params.json").read_text(encoding="utf-8"))
    assert params["datasetType"] == "asr-corpus"
    assert params["languages"] == {"sourceLanguage": "te"}
    assert params["format"] == "wav" and params["channel"] == "mono" and params["bitsPerSample"] == "sixteen"
    assert params["samplingRate"] == pytest.approx(22.05)
    assert params["license"] and params["collectionSource"]
    rows = json.loads((tiny_corpus / "data.json").read_text(encoding="utf-8"))
    assert len(rows) == 9
    assert {r["speaker"] for r in rows} == {"low", "high", "fem"}
    for row in rows:
        assert set(row) >= {"audioFilename", "text", "speaker", "gender", "duration", "collectionSource"}
        assert row["text"] in TINY_SENTENCES
        assert row["gender"] == ("female" if row["speaker"] == "fem" else "male")
        audio, sr = _read_wav(tiny_corpus / row["audioFilename"])
        assert row["duration"] == pytest.approx(len(audio) / sr, abs=1e-5)
    listed = {r["audioFilename"] for r in rows}
    on_disk = {p.relative_to(tiny_corpus).as_posix() for p in tiny_corpus.rglob("*.wav")}
    assert listed == on_disk


def test_two_runs_are_byte_identical_and_stale_files_go(tiny_corpus, tmp_path):
    out = tmp_path / "again"
    out.mkdir()
    (out / "params.json").write_text("{}")  # a previous corpus...
    (out / "wavs").mkdir()
    (out / "wavs" / "stale.wav").write_bytes(b"old")  # ...with a file the params no longer make
    synthesize_corpus(TINY, TINY_SENTENCES, out, SEED, workers=1)

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert files(out) == files(tiny_corpus)  # also: stale.wav is gone, nothing extra
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_pitch_and_variant_change_the_voice(tiny_corpus):
    rows = json.loads((tiny_corpus / "data.json").read_text(encoding="utf-8"))
    audio = {(r["speaker"], r["text"]): _read_wav(tiny_corpus / r["audioFilename"])[0] for r in rows}
    for text in TINY_SENTENCES:
        low, high = _median_f0(audio["low", text], 22050), _median_f0(audio["high", text], 22050)
        assert high > 1.2 * low, (text, low, high)
        fem = audio["fem", text]
        same_length = min(len(fem), len(audio["low", text]))
        assert not np.array_equal(fem[:same_length], audio["low", text][:same_length])


def test_refuses_to_replace_an_unrelated_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(ValueError, match="not replacing"):
        synthesize_corpus(TINY, TINY_SENTENCES, tmp_path, SEED)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_unknown_variant_fails_clearly_and_leaves_no_output(tmp_path):
    bad = SynthConfig("unused", 1, [SpeakerVariant("x", "nosuchvariant", "male", 50, 150)])
    with pytest.raises(RuntimeError, match="nosuchvariant"):
        synthesize_corpus(bad, TINY_SENTENCES, tmp_path / "out", SEED)
    assert os.listdir(tmp_path) == []
