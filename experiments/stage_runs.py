"""Helpers of the experiments that run the pipeline's own stage commands on a corpus outside the DVC workspace:
stage command lines (dvc.yaml's, with other paths), params files with overrides (validated like any params
file), stage subprocesses, dvclive series."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from codec.config.convert import ConfigError
from codec.runtime.io import write_text_atomic
from pipeline.params import Params, params_from_dict
from workflow.lib.dvc_stages import stage_command

ROOT = Path(__file__).resolve().parents[1]


def stage_args(stage: str, **paths: str | Path | None) -> list[str]:
    """``stage``'s command line as this checkout's dvc.yaml writes it, with these paths (and ``params=``,
    ``timings=``...): the module and its arguments, what follows ``python -m``. Every experiment builds its stage
    commands here, so a flag renamed in dvc.yaml reaches them all (``workflow.lib.dvc_stages.stage_command``;
    the train stage's launcher script becomes ``pipeline.train``, run directly)."""
    return stage_command(ROOT / "dvc.yaml", stage, **paths)


# What each stage writes, as names inside the folder a driver gives it (flag keyword -> name).
PREPARE_OUTS = {"out": "shards", "stats": "stats.json", "rejected": "rejected.csv"}
TRAIN_OUTS = {"checkpoints": "checkpoints", "out": "codec.safetensors", "live": "train", "timings": "timings.json"}
EVALUATE_OUTS = {
    "metrics": "metrics.json",
    "scores": "scores",
    "out_dir": "eval",
    "html": "index.html",
    "timings": "timings.json",
}


def inside(folder: Path, names: dict[str, str]) -> dict[str, Path]:
    return {key: folder / name for key, name in names.items()}


def prepare_args(corpus: str | Path, folder: Path, params: Path) -> list[str]:
    """The prepare stage on ``corpus`` with ``params``, writing in ``folder`` (:data:`PREPARE_OUTS`)."""
    return stage_args("prepare", corpus_dir=corpus, **inside(folder, PREPARE_OUTS), params=params)


def seed_args(shards: Path, seed: Path, params: Path) -> list[str]:
    """The seed_codebooks stage on ``shards`` with ``params``: weights to ``seed``, its metrics beside them (.json)."""
    return stage_args("seed_codebooks", shards=shards, out=seed, metrics=seed.with_suffix(".json"), params=params)


def train_args(shards: Path, init: Path, folder: Path, params: Path) -> list[str]:
    """The train stage from ``init`` on ``shards`` with ``params``, writing in ``folder`` (:data:`TRAIN_OUTS`)."""
    return stage_args("train", shards=shards, init=init, **inside(folder, TRAIN_OUTS), params=params)


def evaluate_args(model: Path, shards: Path, folder: Path, params: Path, plots: str = "rate_distortion") -> list[str]:
    """The evaluate stage scoring ``model`` on the test split of ``shards`` with ``params``, writing in ``folder``
    (:data:`EVALUATE_OUTS`, the rate-distortion CSVs in ``folder/plots``); no code statistics (no tokenize stage
    ran beside it) and no reference codec (the shipped one, scored once per test split, not once per run)."""
    outs = inside(folder, {**EVALUATE_OUTS, "plots": plots})
    return stage_args("evaluate", model=model, shards=shards, **outs, tokens_stats=None, reference=None, params=params)


def set_dotted(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to ``data`` in place; returns it."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --set {item!r}: expected key=value")
        *sections, leaf = key.split(".")
        parent = data
        for part in sections:
            if not isinstance(parent.get(part), dict):
                raise SystemExit(f"error: --set {key}: {part!r} is not a params section")
            parent = parent[part]
        parent[leaf] = yaml.safe_load(value)
    return data


def write_params(data: dict[str, Any], out: Path, what: str = "params") -> Params:
    """Validate ``data`` with the params loader (unknown keys and wrong types stop here, before anything
    is written) and write it to ``out`` as YAML."""
    try:
        params = params_from_dict(data)
    except ConfigError as exc:
        raise SystemExit(f"error: {what}: {exc}") from None
    write_text_atomic(out, yaml.safe_dump(data, sort_keys=False))
    return params


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SystemExit(f"error: {path}: expected a mapping of params sections")
    return data


def run_stage(args: list[str], done: Path | None = None, log: Path | None = None) -> None:
    """``python -m <args>`` (:func:`stage_args`) from the repository root; skipped when ``done`` exists. With ``log``
    the output goes to that file (and the file is named when the stage fails)."""
    if done is not None and done.exists():
        print(f"kept {done}", flush=True)
        return
    print("$ python -m " + " ".join(args), flush=True)
    # `python -m` from the checkout's root puts it first on sys.path: the stages run this checkout's code
    # (a worktree's too), whatever is installed.
    if log is None:
        subprocess.run([sys.executable, "-m", *args], check=True, cwd=ROOT)
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        code = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    if code:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(f"error: {args[0]} failed (exit {code}); last lines of {log}:\n" + "\n".join(tail))


def read_series(plots: Path, name: str) -> dict[int, float]:
    """One dvclive plot series (``<plots>/<name>.tsv``: step, value) as {step: value}."""
    path = plots / f"{name}.tsv"
    if not path.is_file():
        return {}
    with path.open() as f:
        return {int(row["step"]): float(row[name.split("/")[-1]]) for row in csv.DictReader(f, delimiter="\t")}
