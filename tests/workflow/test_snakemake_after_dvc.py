"""A changed parameter re-runs the stages that read it under Snakemake, also when `dvc repro` built the outputs.

Snakemake's own params trigger needs the metadata it records when it builds; outputs built by DVC have
none, so the Snakefile stamps each stage's params in an input file (workflow/lib/dvc_stages.py,
``write_params_stamps``) and reads what dvc.lock says the outputs were built with.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("snakemake")
ruamel_yaml = pytest.importorskip("ruamel.yaml")

_spec = importlib.util.spec_from_file_location("parity", Path(__file__).with_name("test_workflow_parity.py"))
parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parity)
ROOT = parity.ROOT


def _dvc_built_workspace(tmp_path: Path) -> Path:
    """A copy of the project whose outputs look as `dvc repro` left them: present, newer than every
    input, and a dvc.lock recording params.yaml's values for each stage (as DVC writes it, YAML 1.2)."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "view").mkdir()
    smk = parity.snakemake_view(ROOT, tmp_path / "view")  # the outputs every rule declares
    for name in ("Snakefile", "dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, work / name)
    for name in ("codec", "pipeline", "workflow", "scripts"):
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "pretrained" / "telucodec-te", work / "pretrained" / "telucodec-te")  # evaluate's reference
    (work / "data").mkdir()
    shutil.copy(ROOT / "data" / "te_sentences.txt", work / "data" / "te_sentences.txt")
    config = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    lock = {
        "schema": "2.0",
        "stages": {
            name: {
                "cmd": "...",
                "params": {
                    "params.yaml": {  # dotted keys stay flat
                        key: parity.lookup(config, key) for key in spec.get("params", [])
                    }
                },
            }
            for name, spec in dvc["stages"].items()
        },
    }
    past = time.time() - 3600
    for root, _, files in os.walk(work):
        for name in files:
            os.utime(Path(root, name), (past, past))
    folders = set().union(*(rule["folders"] for rule in smk.values()))
    for out in sorted(set(smk["all"]["input"]) | set(smk["prepare"]["input"])):
        path = work / out
        if out in folders:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    built = time.time() - 60  # one time for all: no output is newer than the one built from it
    for out in sorted(set(smk["all"]["input"]) | set(smk["prepare"]["input"])):
        os.utime(work / out, (built, built))
    with open(work / "dvc.lock", "w", encoding="utf-8") as f:  # written last, as DVC does
        ruamel_yaml.YAML(typ="safe", pure=True).dump(lock, f)
    return work


def _planned_jobs(work: Path, *configfiles: Path) -> set[str]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1"]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    if "Nothing to be done" in done.stdout + done.stderr:
        return set()
    table = (done.stdout + done.stderr).split("Job stats:")[1].split("total")[0]
    return set(re.findall(r"^(\w+)\s+\d+$", table, flags=re.M)) - {"job", "all"}


def test_overrides_after_a_dvc_build_rerun_the_stages_that_read_them(tmp_path):
    work = _dvc_built_workspace(tmp_path)
    assert _planned_jobs(work) == set(), "params as DVC built them: nothing to do"
    over = tmp_path / "over.yaml"
    over.write_text("train: {steps: 10}\n")
    # The tokens are the trained model's codes: a new model re-tokenizes the corpus too.
    assert _planned_jobs(work, over) == {"train", "export", "tokenize_shard", "tokenize", "evaluate"}
    evaluate = tmp_path / "evaluate.yaml"
    evaluate.write_text("evaluate: {max_utterances: 3}\n")
    assert _planned_jobs(work, evaluate) == {"evaluate"}
    cleanup = tmp_path / "cleanup.yaml"  # a dotted key of evaluate's (prepare's clean-up, for extra corpora)
    cleanup.write_text("prepare: {trim_top_db: 30.0}\n")
    assert {"evaluate", "prepare"} <= _planned_jobs(work, cleanup)
    # Back to params.yaml as DVC built it: nothing Snakemake built in between, so nothing to do.
    assert _planned_jobs(work) == set()
