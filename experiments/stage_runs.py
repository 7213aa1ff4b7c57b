"""Helpers of the experiments that run the pipeline's own stage commands on a corpus outside the DVC workspace:
params files with overrides (validated like any params file), stage subprocesses, dvclive series."""

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

ROOT = Path(__file__).resolve().parents[1]


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
    """``python -m <args>`` from the repository root; skipped when ``done`` exists. With ``log`` the
    output goes to that file (and the file is named when the stage fails)."""
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
