"""The whole evaluation: test split plus extra corpora, the codec metrics without opus-tools, a reference codec."""

import math

import pytest
import torch

from codec.config.evaluate import EvaluateConfig, ExtraCorpus
from codec.config.model import ModelConfig
from codec.config.prepare import PrepareConfig
from codec.config.quantizer import QuantizerConfig
from codec.evaluation.run import Reference, run_evaluation
from codec.evaluation.sets import EvaluationError
from codec.evaluation.summary import metrics_summary
from codec.formats.weights import load_codec
from codec.model.codec import build_codec


def test_without_opus_tools_the_codec_is_still_scored(tiny_codec_file, tiny_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither opusenc nor opusdec
    messages = []
    cfg = EvaluateConfig(
        levels=[2, 9],
        opus_kbps=[6],
        max_utterances=1,
        examples=0,
        device="cpu",
        extra_corpora=[ExtraCorpus("absent", str(tmp_path / "none"))],
    )
    cleaning = PrepareConfig("x").audio_options(8000)  # its rate is replaced by the codec's
    evaluation = run_evaluation(
        load_codec(tiny_codec_file), cfg, tiny_shards, cleaning, model_name="tiny", log=messages.append
    )
    assert not evaluation.opus_available and evaluation.opus.startswith("skipped: opusenc and opusdec not found")
    assert any("Opus baseline skipped" in m for m in messages)
    assert any("extra corpus 'absent' skipped" in m for m in messages)
    assert evaluation.levels == [2, 4] and evaluation.unavailable.keys() == {"absent"}
    (test,) = evaluation.sets
    assert [s.system for s in test.systems] == ["codec", "codec"] and len(test.rows) == 2
    assert evaluation.timing.audio_seconds > 0 and evaluation.device == "cpu"


def test_asking_for_cuda_without_it_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    cfg = EvaluateConfig(device="cuda", max_utterances=1)
    with pytest.raises(EvaluationError, match="evaluate.device: device 'cuda' was asked for but torch sees no CUDA"):
        run_evaluation(None, cfg, "no-shards", PrepareConfig("x").audio_options(8000))


def test_a_reference_is_scored_on_the_same_test_utterances_resampled_to_its_rate(tiny_codec_file, tiny_shards):
    """A reference at another rate (8 kHz here, the shards are 16 kHz) gets the same test ids, resampled from the
    shards as the evaluated codec's audio is; its levels are evaluate.levels clipped to its own."""
    torch.manual_seed(1)
    other = build_codec(
        ModelConfig(channels=4, latent_dim=16, n_residual_layers=1),
        QuantizerConfig(num_levels=2, codebook_size=32),
        8000,
    )
    cfg = EvaluateConfig(levels=[1, 4], opus_kbps=[], max_utterances=2, examples=1, device="cpu")
    messages = []
    evaluation = run_evaluation(
        load_codec(tiny_codec_file),
        cfg,
        tiny_shards,
        PrepareConfig("x").audio_options(16000),
        log=messages.append,
        reference=Reference("other", other, "a test reference"),
    )
    (test,) = evaluation.sets
    (ref,) = evaluation.references
    assert ref.label == "other (a test reference)" and ref.set_name == "test" and ref.sample_rate == 8000
    assert ref.levels == [1, 2] and [s.setting for s in ref.result.systems] == ["q1", "q2"]  # no Opus
    ids = [u.id for u in test.eval_set.utterances]
    assert len(ids) == 2 and [u.id for u in ref.result.eval_set.utterances] == ids
    for mine, theirs in zip(test.eval_set.utterances, ref.result.eval_set.utterances):
        assert theirs.seconds(8000) == pytest.approx(mine.seconds(16000), abs=1e-3)
    assert [(r.utterance, r.system.setting) for r in ref.result.rows] == [(i, q) for i in ids for q in ("q1", "q2")]
    assert all(math.isnan(r.values["dnsmos_ovrl"]) and math.isfinite(r.values["snr_db"]) for r in ref.result.rows)
    assert len(ref.result.examples) == 1 and ref.result.examples[0].utterance == ids[0]
    assert any(m.startswith("evaluate: reference other: 2 test utterances scored in") for m in messages)
    doc = metrics_summary(evaluation.sets, evaluation.references)
    assert sorted(doc["test"]["reference"]["other"]) == ["q1", "q2", "utterances"]
    assert doc["test"]["reference"]["other"]["utterances"] == 2 and sorted(doc["test"]["codec"]) == ["q1", "q4"]
    assert doc["test"]["reference"]["other"]["q2"]["kbps"] == pytest.approx(other.bitrate_kbps(2))
    assert "reference" not in metrics_summary(evaluation.sets)["test"]  # without references: the old document
