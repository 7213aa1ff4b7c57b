"""The whole evaluation: test split plus extra corpora, and the codec metrics without opus-tools."""

import pytest
import torch

from codec.config.evaluate import EvaluateConfig, ExtraCorpus
from codec.config.prepare import PrepareConfig
from codec.evaluation.run import run_evaluation
from codec.evaluation.sets import EvaluationError
from codec.formats.weights import load_codec


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
