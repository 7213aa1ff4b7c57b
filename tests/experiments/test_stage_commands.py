"""The experiments' stage commands are dvc.yaml's: the same module and flags, other paths; none is written out again."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import yaml

from experiments import stage_runs
from workflow.lib.dvc_stages import command_module

ROOT = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
W = Path("/work")
SHARDS, SEED, PARAMS = W / "shards", W / "seed.safetensors", W / "p.yaml"


def module_and_flags(stage: str) -> tuple[str, list[str]]:
    module, words = command_module(STAGES[stage]["cmd"])
    return module, [w for w in words if w.startswith("--")]


def flags_of(args: list[str]) -> list[str]:
    return [a for a in args if a.startswith("--")]


@pytest.mark.parametrize(
    "stage, args, extra",
    [
        ("prepare", stage_runs.prepare_args("/corpus", W, PARAMS), ["--params"]),
        ("seed_codebooks", stage_runs.seed_args(SHARDS, SEED, PARAMS), ["--params"]),
        ("train", stage_runs.train_args(SHARDS, SEED, W, PARAMS), ["--timings", "--params"]),
        ("evaluate", stage_runs.evaluate_args(W / "m", SHARDS, W / "eval", PARAMS), ["--timings", "--params"]),
    ],
)
def test_each_drivers_command_names_exactly_the_stages_module_and_flags(stage, args, extra):
    module, flags = module_and_flags(stage)
    if stage == "evaluate":  # no tokenize stage runs beside the experiments (no code statistics for the page),
        flags.remove("--tokens-stats")  # and they score no reference codec
        flags.remove("--reference")
    assert args[0] == module
    assert flags_of(args) == flags + extra
    assert all(not a.startswith(("data/", "models/", "reports/")) for a in args)  # every path is the driver's


def test_train_runs_the_module_of_the_stages_launcher_with_its_flags():
    assert STAGES["train"]["cmd"].split()[0] == "workflow/launch-train.sh"
    args = stage_runs.train_args(SHARDS, SEED, W / "run", PARAMS)
    assert args == [
        "pipeline.train",
        *("--shards", "/work/shards", "--init", "/work/seed.safetensors", "--checkpoints", "/work/run/checkpoints"),
        *("--out", "/work/run/codec.safetensors", "--live", "/work/run/train"),
        *("--timings", "/work/run/timings.json", "--params", "/work/p.yaml"),
    ]


def test_a_change_to_dvc_yaml_reaches_the_drivers_or_stops_them(tmp_path, monkeypatch):
    """A flag added in dvc.yaml (a switch here) reaches the drivers' command; a path flag renamed there stops them
    with its name (a driver says which path it wants under which flag), never a stale command line."""
    data = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    data["stages"]["train"]["cmd"] += " --no-progress"
    data["stages"]["seed_codebooks"]["cmd"] = data["stages"]["seed_codebooks"]["cmd"].replace("--metrics", "--report")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    shutil.copytree(ROOT / "pipeline", tmp_path / "pipeline")
    monkeypatch.setattr(stage_runs, "ROOT", tmp_path)
    train = stage_runs.train_args(SHARDS, SEED, W, PARAMS)
    assert flags_of(train) == [*module_and_flags("train")[1], "--no-progress", "--timings", "--params"]
    with pytest.raises(TypeError, match="no path given for --report"):
        stage_runs.seed_args(SHARDS, SEED, PARAMS)


@pytest.mark.parametrize(
    "path", sorted([*ROOT.glob("experiments/*.py"), *ROOT.glob("benchmarks/*.py")]), ids=lambda p: p.name
)
def test_no_experiment_or_benchmark_writes_a_stage_module_itself(path):
    """A stage's module as a string of its own in code (``"pipeline.train"``) is a command line written out again."""
    modules = {command_module(spec["cmd"])[0] for spec in STAGES.values()}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert sorted(modules & strings) == []
