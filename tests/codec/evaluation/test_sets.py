"""What the evaluation reads: the test split of the shards and extra corpora cleaned like prepare."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from codec.config.evaluate import EvaluateConfig, ExtraCorpus
from codec.config.prepare import AudioOptions, PrepareConfig
from codec.data.shards import iter_segments, split_files
from codec.data.tone_shards import write_synthetic_shards
from codec.evaluation.sets import EvaluationError, load_extra_corpus, load_test_split, spread
from tests.conftest import SHARED_CORPUS, write_speechlike_corpus


def test_spread_picks_evenly_from_first_to_last():
    assert spread(5, 0) == [0, 1, 2, 3, 4]
    assert spread(5, 9) == [0, 1, 2, 3, 4]
    assert spread(10, 1) == [0]
    assert spread(10, 4) == [0, 3, 6, 9]
    picked = spread(1000, 50)
    assert len(picked) == 50 and picked[0] == 0 and picked[-1] == 999
    assert max(np.diff(picked)) - min(np.diff(picked)) <= 1


def test_test_split_is_read_capped_and_resampled(tiny_shards):
    rows = {r.id: r for r in iter_segments(split_files(tiny_shards, "test"))}
    full = load_test_split(tiny_shards, 16000, 0)
    assert full.name == "test" and full.available == len(rows) >= 2
    assert [u.id for u in full.utterances] == sorted(rows)
    for u in full.utterances:
        assert u.audio.dtype == np.float32 and u.speaker == rows[u.id].speaker
        np.testing.assert_allclose(u.audio * 32767.0, rows[u.id].audio, atol=1e-3)
    capped = load_test_split(tiny_shards, 8000, 2)
    assert len(capped.utterances) == 2 and capped.available == len(rows)
    for u in capped.utterances:
        assert abs(u.audio.shape[0] - rows[u.id].num_samples / 2) <= 1


def test_missing_or_empty_test_split_is_a_clear_error(tmp_path):
    with pytest.raises(EvaluationError, match="no manifest.json"):
        load_test_split(tmp_path, 16000, 0)
    shards = write_synthetic_shards(tmp_path / "shards", train_rows=2, valid_rows=1, num_shards=1)
    with pytest.raises(EvaluationError, match="lists no 'test' split"):
        load_test_split(shards, 16000, 0)
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["splits"]["test"] = {"rows": 0, "seconds": 0.0, "files": []}
    (shards / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EvaluationError, match="'test' split is empty"):
        load_test_split(shards, 16000, 0)


def test_extra_corpus_is_cleaned_like_prepare_and_lists_rejects(tmp_path):
    write_speechlike_corpus(tmp_path / "corpus", speakers=2, utterances=2, seconds=1.0, sample_rate=22050)
    sf.write(tmp_path / "corpus" / "spk00" / "quiet.wav", np.zeros(22050, np.float32), 22050)
    (tmp_path / "corpus" / "spk01" / "broken.wav").write_bytes(b"RIFF0000WAVE")
    options = PrepareConfig(corpus="unused").audio_options(16000)
    assert isinstance(options, AudioOptions) and options.sample_rate == 16000
    result = load_extra_corpus(ExtraCorpus("mine", str(tmp_path / "corpus"), "folder", 0), options)
    assert result.unavailable is None and result.available == 6
    assert sorted(s["id"] for s in result.skipped) == ["spk00/quiet", "spk01/broken"]
    assert {s["reason"].split(":")[0] for s in result.skipped} == {"silent", "unreadable"}
    assert len(result.utterances) == 4
    for u in result.utterances:
        assert u.id.endswith("-000") and u.audio.dtype == np.float32
        assert abs(u.audio.shape[0] - 16000) <= 16000 * 0.05  # resampled, maybe trimmed a little
        assert abs(float(u.audio.mean())) < 1e-3  # DC removed
    capped = load_extra_corpus(ExtraCorpus("mine", str(tmp_path / "corpus"), "folder", 2), options)
    assert len(capped.utterances) <= 2


def test_a_missing_extra_corpus_is_skipped_with_the_reason(tmp_path):
    result = load_extra_corpus(ExtraCorpus("gone", str(tmp_path / "nowhere")), PrepareConfig("x").audio_options(16000))
    assert result.utterances == [] and "does not exist" in result.unavailable


def test_config_rejects_bad_values_and_clips_levels():
    assert EvaluateConfig(levels=[1, 2, 4, 8, 12]).levels_for(4) == [1, 2, 4]
    for bad in (
        dict(levels=[]),
        dict(levels=[0, 1]),
        dict(opus_kbps=[4]),
        dict(max_utterances=-1),
        dict(extra_corpora=[ExtraCorpus("a", "x"), ExtraCorpus("a", "y")]),
    ):
        with pytest.raises(ValueError):
            EvaluateConfig(**bad)
    for name in ("", "test", "a/b"):
        with pytest.raises(ValueError):
            ExtraCorpus(name, "x")


@pytest.mark.skipif(not os.path.isdir(SHARED_CORPUS), reason=f"real corpus not found at {SHARED_CORPUS}")
def test_the_shared_telugu_corpus_reads_as_an_extra_corpus():
    result = load_extra_corpus(
        ExtraCorpus("chai-bisket", SHARED_CORPUS, "ulca", 2), PrepareConfig("x").audio_options(16000)
    )
    assert result.available > 100 and len(result.utterances) == 2
    assert all(u.audio.shape[0] > 8000 and np.abs(u.audio).max() <= 1.0 for u in result.utterances)
