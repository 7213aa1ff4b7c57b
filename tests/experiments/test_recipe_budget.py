"""experiments/recipe_budget.py end to end at a tiny budget on the embedded corpus (eSpeak NG Telugu)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[2]

# Every new building block at toy size: Vocos decoder, Snake, factorised lookup, DAC's mel scales and
# discriminators (from step 2, so both calibration runs and the adversarial steps of training run).
TOY_RECIPE = {
    "model": {"activation": "snake", "decoder": "vocos", "vocos": {"dim": 16, "intermediate_dim": 32, "num_layers": 1}},
    "quantizer": {"codebook_dim": 4},
    "loss": {
        "mel_weight": 15.0,
        "mel_fft_sizes": [32, 64, 128, 256],
        "mel_n_mels": [5, 10, 20, 40],
        "adversarial_start_step": 2,
        "discriminator": {
            "kinds": ["mpd", "mrd"],
            "channels": 2,
            "periods": [2, 3],
            "period_channels": [2, 4],
            "band_fft_sizes": [256],
        },
    },
    "train": {"best_metric": "mel_distance"},
}


def run_benchmark(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.recipe_budget", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_tiny_budget_run_scores_every_recipe_beside_opus_and_resumes(embedded_corpus, tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    shutil.copy(ROOT / "workflow" / "recipes" / "today.yaml", recipes / "today.yaml")
    (recipes / "toy.yaml").write_text(yaml.safe_dump(TOY_RECIPE))
    extra = tmp_path / "held-out"
    extra.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        t = np.arange(24000) / 24000
        sf.write(
            extra / f"clip{i}.wav",
            0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.01 * rng.standard_normal(t.size),
            24000,
        )
    args = [
        "--corpus",
        str(embedded_corpus),
        "--format",
        "ulca",
        "--params",
        str(ROOT / "params.yaml"),
        str(ROOT / "workflow" / "params-tiny.yaml"),
        "--recipe-dir",
        str(recipes),
        "--budget-steps",
        "4",
        "--calibration-steps",
        "2",
        "--max-utterances",
        "2",
        "--work",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path / "out"),
        "--extra-corpus",
        str(extra),
    ]
    first = run_benchmark(args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    out = tmp_path / "out" / "4steps"
    doc = json.loads((out / "results.json").read_text())
    assert [r["recipe"] for r in doc["results"]] == ["today", "toy"]
    opus = shutil.which("opusenc") is not None
    for result in doc["results"]:
        assert result["steps"] == 4 and isinstance(result["seconds_per_step"]["generator"], float)
        for corpus in ("test", "held-out"):
            metrics = result["metrics"][corpus]
            assert sorted(metrics["codec"]) == ["q3", "q4"]  # 1.5 kbps and the tiny model's 4 levels
            assert all(metrics["codec"][q]["pesq_wb"] is not None for q in metrics["codec"])
            assert (sorted(metrics.get("opus", {})) == ["12kbps", "6kbps", "8kbps"]) == opus
        assert set(result["spectrum"]) >= {"ok", "peaks", "dc_excess_db", "nyquist_excess_db"}
        assert len(result["spectrum"]["excess_db"]) == 513 and result["spectrum"]["bin_hz"] == 16000 / 1024
    toy = doc["results"][1]
    # The discriminator's calibration ran (its share is a measured time: only its presence is asserted; on a busy
    # machine the two calibrations can read alike, a share of 0).
    assert toy["seconds_per_step"]["adversarial"] is not None and toy["adversarial_start_step"] == 2
    assert 0 <= toy["discriminator_share"] < 1 and doc["results"][0]["seconds_per_step"]["adversarial"] is None
    table = (out / "results.md").read_text()
    assert (
        "| toy | 1.2 |" in table and "| today | 0.9 |" in table
    )  # 4 and 3 levels of 6 bits at 50 frames/s and ("| Opus | 6 |" in table) == opus
    assert "held-out" in table
    assert (out / "rate_distortion.png").stat().st_size > 1000 and (out / "spectra.png").stat().st_size > 1000

    again = run_benchmark(args)  # finished work is kept: nothing trains or scores again
    assert again.returncode == 0, again.stderr[-3000:]
    assert "$ python -m pipeline.train" not in again.stdout and "$ python -m pipeline.evaluate" not in again.stdout
    assert json.loads((out / "results.json").read_text()) == doc


def test_bad_recipes_and_budgets_are_refused_before_any_work(embedded_corpus, tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "typo.yaml").write_text("train: {stpes: 10}\n")
    (recipes / "corpus.yaml").write_text("prepare: {max_seconds: 3}\n")
    base = [
        "--corpus",
        str(embedded_corpus),
        "--format",
        "ulca",
        "--recipe-dir",
        str(recipes),
        "--work",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path / "out"),
    ]
    typo = run_benchmark(base + ["--recipes", "typo"])
    assert typo.returncode != 0 and "stpes" in typo.stderr
    corpus = run_benchmark(base + ["--recipes", "corpus"])
    assert corpus.returncode != 0 and "'prepare' is the benchmark's" in corpus.stderr
    missing = run_benchmark(base + ["--recipes", "nope"])
    assert missing.returncode != 0 and "no recipe" in missing.stderr
    budget = run_benchmark(base + ["--recipes", "typo", "--budget-minutes", "0"])
    assert budget.returncode != 0 and "must be positive" in budget.stderr
    assert not (tmp_path / "work" / "corpus" / "shards").exists()


def test_the_spectrum_check_looks_for_a_ripple_at_every_overlap_added_hop():
    from codec.config.model import ModelConfig, VocosConfig
    from codec.config.quantizer import QuantizerConfig
    from codec.model.codec import build_codec
    from experiments.recipe_budget import overlap_rates

    def codec(**model):
        return build_codec(ModelConfig(channels=4, latent_dim=8, **model), QuantizerConfig(num_levels=1), 16000)

    small = VocosConfig(dim=8, intermediate_dim=8, num_layers=1)
    assert overlap_rates(codec()) == [50.0]  # SEANet: the code frames only
    assert overlap_rates(codec(decoder="vocos", vocos=small)) == [50.0]
    upsampled = VocosConfig(dim=8, intermediate_dim=8, num_layers=1, head_upsample=4)
    assert overlap_rates(codec(decoder="vocos", vocos=upsampled)) == [50.0, 200.0]


def test_init_from_an_export_gives_train_weights_of_the_same_codec(tmp_path):
    import torch

    from codec.config.export import ExportConfig
    from codec.config.model import ModelConfig, VocosConfig
    from codec.config.quantizer import QuantizerConfig
    from codec.formats.export import export_codec
    from codec.formats.weights import load_codec
    from codec.model.codec import build_codec
    from experiments.recipe_budget import init_weights

    vocos = VocosConfig(dim=8, intermediate_dim=8, num_layers=1, head_upsample=4)
    codec = build_codec(ModelConfig(channels=4, latent_dim=8, decoder="vocos", vocos=vocos), QuantizerConfig(), 16000)
    export = export_codec(codec, tmp_path / "export.safetensors", ExportConfig(dtype="float16")).path
    init = init_weights(export, tmp_path / "work")
    loaded = load_codec(init)  # what the train stage's --init reads: strict, float32
    for name, value in codec.state_dict().items():
        got = loaded.state_dict()[name]
        assert got.dtype == value.dtype
        expected = value.half().to(value.dtype) if value.is_floating_point() else value
        assert torch.equal(got, expected), name
    assert init_weights(export, tmp_path / "work") == init  # kept, named by the model id


def test_init_from_an_export_takes_the_recipes_layout(tmp_path):
    """A recipe's model section relays the same tensors out (a causal model from a non-causal export); a change
    of shape stops with the reason instead of loading half the weights."""
    import pytest
    import torch

    from codec.config.export import ExportConfig
    from codec.config.model import ModelConfig, VocosConfig
    from codec.config.quantizer import QuantizerConfig
    from codec.formats.export import export_codec
    from codec.formats.weights import load_codec
    from codec.model.codec import build_codec
    from codec.model.streaming import algorithmic_latency, is_causal
    from experiments.recipe_budget import init_weights

    vocos = VocosConfig(dim=8, intermediate_dim=8, num_layers=1, head_upsample=4)
    codec = build_codec(ModelConfig(channels=4, latent_dim=8, decoder="vocos", vocos=vocos), QuantizerConfig(), 16000)
    export = export_codec(codec, tmp_path / "export.safetensors", ExportConfig()).path
    relaid = init_weights(export, tmp_path / "work", {"causal": True, "vocos": {"lookahead_frames": 4}})
    causal = load_codec(relaid)
    assert is_causal(causal) and algorithmic_latency(causal).total_ms == 40.0
    assert all(torch.equal(causal.state_dict()[k], v) for k, v in codec.state_dict().items())
    assert relaid != init_weights(export, tmp_path / "work")  # the plain layout is another file
    with pytest.raises(SystemExit, match="do not fit|size mismatch|shape"):
        init_weights(export, tmp_path / "work", {"vocos": {"dim": 16}})
    # The recipe's quantizer section too (it was dropped before): how it trains changes, its tensors do not
    lowrate = load_codec(init_weights(export, tmp_path / "work", None, {"dropout_probability": 1.0}))
    assert lowrate.quantizer.config.dropout_probability == 1.0 and codec.quantizer.config.dropout_probability == 0.5
    assert all(torch.equal(lowrate.state_dict()[k], v) for k, v in codec.state_dict().items())
    with pytest.raises(SystemExit, match="do not fit|size mismatch|shape"):
        init_weights(export, tmp_path / "work", None, {"codebook_size": 512})


def test_each_recipe_is_scored_at_the_level_counts_that_code_the_tables_rates():
    """1.5, 3 and 6 kbps: 3, 6 and 12 levels of 10 bits at 50 frames/s, but 2 and 4 levels of 12 bits at 62.5
    frames/s and 6 and 12 levels of 10 bits at 25 frames/s; a rate above a codec's top one is not scored. A codec
    that codes none of them (4 levels of 6 bits: 0.3 kbps a level) falls back to 3, 6 and 12 levels, clipped."""
    from experiments.recipe_budget import recipe_params
    from pipeline.params import merge_params

    base = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    recipes = ROOT / "workflow" / "recipes"
    levels = {
        name: recipe_params(base, recipes, name)["evaluate"]["levels"]
        for name in ("cpu-handover", "lowrate-62hz-4096", "lowrate-25hz", "lowrate-6levels")
    }
    tiny = merge_params(base, yaml.safe_load((ROOT / "workflow" / "params-tiny.yaml").read_text(encoding="utf-8")))
    levels["tiny"] = recipe_params(tiny, recipes, "cpu-handover")["evaluate"]["levels"]
    assert levels == {
        "cpu-handover": [3, 6, 12],
        "lowrate-62hz-4096": [2, 4],
        "lowrate-25hz": [6, 12],
        "lowrate-6levels": [3, 6],
        "tiny": [3, 4],
    }
