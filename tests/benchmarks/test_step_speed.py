"""The training-step speed benchmark runs its eager variants on a tiny recipe (a tiny codec, a batch of two
short crops): both tables, a row per variant and per part of a step (its timings are its output, never
asserted here). The compiled variants are left out: compiling takes minutes."""

from __future__ import annotations

import torch
import yaml

from benchmarks import step_speed
from tests.benchmarks.conftest import TINY_PARAMS, finite, numbers, positive, table

VARIANTS = [
    "fp32",
    "fp32-1thread",
    "fp32-fused",
    "bf16",
    "bf16-1thread",
    "bf16-fused-1thread",
    "fp32-nomkldnn",
    "fp32-nomkldnn-1thread",
    "fp32-ftz-1thread",
]
PARTS = ["codec forward", "loss forward", "backward", "optimizer"]


def test_benchmark_smoke(tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_PARAMS), encoding="utf-8")
    step_speed.main(["--recipe", str(recipe), "--steps", "1", "--rounds", "1", "--variants", *VARIANTS])
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()[: len(VARIANTS)]] == VARIANTS  # each "ready in ... s"
    assert f"{recipe}: batch (2, 1, 4000), " in out  # 2 crops of 0.25 s at 16 kHz
    rows = table(out)
    variants, parts = rows[: len(VARIANTS)], rows[len(VARIANTS) :]
    assert [r[0] for r in variants] == VARIANTS
    assert all(positive(numbers(" ".join(r[1:3]))) and r[3].endswith("x") for r in variants)
    assert variants[0][3] == "1.00x"  # fp32 against itself
    assert [r[0] for r in parts] == [
        *PARTS, "of which mel loss, forward + backward", "of which stft loss, forward + backward"
    ]  # fmt: skip
    assert all(finite(numbers(r[1])) and r[2].endswith("%") and finite(numbers(r[2])) for r in parts)


def test_variant_settings_hold_inside_and_are_restored(tmp_path):
    """oneDNN off, denormals flushed and one thread hold while a variant steps, and not after it."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_PARAMS), encoding="utf-8")
    params = step_speed.recipe_params(str(recipe))
    threads = torch.get_num_threads()
    variant = step_speed.Variant("fp32-ftz-1thread", params, step_speed.speech_batch(2, 4000))
    with variant.settings():
        assert torch.get_num_threads() == 1
        assert torch.tensor([1e-40]).item() == 0.0  # a float32 denormal, flushed
    assert torch.get_num_threads() == threads and torch.tensor([1e-40]).item() != 0.0
    with step_speed.Variant("fp32-nomkldnn", params, step_speed.speech_batch(2, 4000)).settings():
        assert not torch.backends.mkldnn.is_available() or not torch.backends.mkldnn.enabled
    assert torch.backends.mkldnn.enabled


def test_only_fused_variants_run_the_fused_optimizer(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_PARAMS), encoding="utf-8")
    params = step_speed.recipe_params(str(recipe))
    x = step_speed.speech_batch(2, 4000)
    fused = {name: step_speed.Variant(name, params, x).optimizer.defaults["fused"] for name in ("fp32", "bf16-fused")}
    assert fused == {"fp32": False, "bf16-fused": True}


def test_several_recipes_run_interleaved_against_the_first_ones_fp32(tmp_path, capsys):
    """Two recipes (the second with the encoder's strides reversed): a row per recipe and variant, each named by
    both, the ratios against the first recipe's fp32, and a table of parts for each recipe's fp32 step."""
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(yaml.safe_dump(TINY_PARAMS), encoding="utf-8")
    reversed_strides = {**TINY_PARAMS, "model": {**TINY_PARAMS["model"], "strides": [8, 5, 4, 2]}}
    second.write_text(yaml.safe_dump(reversed_strides), encoding="utf-8")
    step_speed.main(
        ["--recipe", str(first), str(second), "--steps", "1", "--rounds", "1", "--variants", "fp32", "bf16"]
    )
    out = capsys.readouterr().out
    rows = table(out)
    labels = [f"{r} {v}" for r in (first, second) for v in ("fp32", "bf16")]
    assert [r[0] for r in rows[:4]] == labels
    assert rows[0][3] == "1.00x" and all(r[3].endswith("x") for r in rows[:4])
    assert f"| part of the {first} fp32 step |" in out and f"| part of the {second} fp32 step |" in out
