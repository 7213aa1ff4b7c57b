"""workflow/recipes/*.yaml: each merges over params.yaml into valid params and sets only training sections;
scripts/recipe_overrides.py turns one into `dvc exp run -S` overrides that DVC applies to the same params."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from codec.dsp.metrics import nominal_kbps
from pipeline.params import merge_params, params_from_dict
from scripts import recipe_overrides

ROOT = Path(__file__).resolve().parents[2]

RECIPES = sorted((ROOT / "workflow" / "recipes").glob("*.yaml"))
TRAINING_SECTIONS = {"seed", "model", "quantizer", "loss", "seed_codebooks", "train", "export"}


def test_there_are_recipes_for_a_cpu_and_a_gpu_run_and_todays_baseline():
    names = {p.stem for p in RECIPES}
    assert {"today", "cpu", "gpu"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates_over_params(path):
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(recipe, dict)
    assert set(recipe) <= TRAINING_SECTIONS, f"{path.name} sets {sorted(set(recipe) - TRAINING_SECTIONS)}"
    base = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params = params_from_dict(merge_params(base, recipe))
    # The run table compares every recipe at 6, 3 and 1.5 kbps: each of those it codes at a whole number of
    # levels; its top rate is 6 kbps, or 3 kbps for a recipe aimed at the low end (lowrate-*).
    level_bps = 1000 * nominal_kbps(1, params.quantizer.codebook_size, params.sample_rate / params.model.hop_length)
    top = params.quantizer.num_levels * level_bps
    assert top == 6000 or (path.stem.startswith("lowrate-") and top == 3000), top
    for bps in (1500, 3000, 6000):
        assert bps > top or (bps / level_bps).is_integer(), (bps, level_bps)
    assert path.read_text(encoding="utf-8").startswith("#"), "a recipe starts with a comment saying what it is"


def test_merge_replaces_lists_and_merges_mappings():
    assert merge_params({"a": {"b": 1, "c": [1, 2]}, "d": 0}, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 0}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_overrides_applied_by_dvc_give_the_merged_params(path, tmp_path):
    from dvc.utils.hydra import apply_overrides

    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = recipe_overrides.overrides(recipe)
    if items:
        apply_overrides(params, items)  # what `dvc exp run -S ...` does to params.yaml
    expected = merge_params(yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")), recipe)
    assert yaml.safe_load(params.read_text(encoding="utf-8")) == expected


def test_overrides_cli_quotes_for_the_shell_and_refuses_typos(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "loss: {mel_n_mels: [5, 10], discriminator: {bands: [[0.0, 0.5], [0.5, 1.0]]}}\n"
        "train: {optimizer: {name: adam}}\n"
    )
    with pytest.raises(SystemExit, match="mel_n_mels lists 2 counts"):  # validated against params.yaml
        recipe_overrides.main([str(recipe)])
    recipe.write_text("train: {optimizer: {name: adam}, best_metric: mel_distance}\nloss: {mel_n_mels: 32}\n")
    recipe_overrides.main([str(recipe)])
    assert shlex.split(capsys.readouterr().out) == [
        "-S",
        "train.optimizer.name=adam",
        "-S",
        "train.best_metric=mel_distance",
        "-S",
        "loss.mel_n_mels=32",
    ]
    recipe.write_text("train: {stpes: 3}\n")
    with pytest.raises(SystemExit, match="stpes"):
        recipe_overrides.main([str(recipe)])
