"""The embedded corpus at toy size, shared by the experiment tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def embedded_corpus(tmp_path_factory) -> Path:
    """The synth stage's corpus at 4 speakers x 3 sentences (enough for speaker-disjoint train/valid/test)."""
    work = tmp_path_factory.mktemp("synth")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["synth"]["sentences"] = str(ROOT / params["synth"]["sentences"])
    params["synth"]["sentences_per_speaker"] = 3
    params["synth"]["speakers"] = params["synth"]["speakers"][:4]
    (work / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.synth",
            "--out",
            str(work / "corpus"),
            "--params",
            str(work / "params.yaml"),
            "--workers",
            "1",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return work / "corpus"
