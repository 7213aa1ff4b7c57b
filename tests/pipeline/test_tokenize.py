"""The tokenize stage's command: the shard jobs plus the merge give what one run gives; errors are one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from codec.config.export import ExportConfig
from codec.formats.export import export_codec
from tests.codec.conftest import make_tiny_codec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_shards):
    work = tmp_path_factory.mktemp("tokenize")
    model = work / "model.safetensors"
    export_codec(make_tiny_codec(), model, ExportConfig())
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["prepare"]["num_shards"] = 2  # as tiny_shards were prepared
    params["tokenize"]["workers"] = 1
    (work / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return work, model, tiny_shards


def stage(work: Path, model: Path, shards: Path, out: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "pipeline.tokenize",
        "--model",
        str(model),
        "--shards",
        str(shards),
        "--out",
        str(work / out),
        "--params",
        str(work / "params.yaml"),
        *extra,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""})


def reports(work: Path, out: str) -> list[str]:
    return ["--stats", str(work / out / "stats.json"), "--skipped", str(work / out / "skipped.csv")]


def test_shard_jobs_and_merge_equal_one_run(setup):
    work, model, shards = setup
    whole = stage(work, model, shards, "whole", *reports(work, "whole"))
    assert whole.returncode == 0, whole.stderr
    assert "shards: " in whole.stdout and "tokens" in whole.stdout
    for shard in ("0", "1"):
        assert stage(work, model, shards, "jobs", "--shard", shard).returncode == 0
    merged = stage(work, model, shards, "jobs", "--merge", *reports(work, "jobs"))
    assert merged.returncode == 0, merged.stderr
    files = sorted(p.relative_to(work / "whole") for p in (work / "whole").rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(work / "jobs") for p in (work / "jobs").rglob("*") if p.is_file())
    for f in files:
        assert (work / "whole" / f).read_bytes() == (work / "jobs" / f).read_bytes(), f


def test_a_merge_before_every_shard_is_done_fails_with_one_line(setup):
    work, model, shards = setup
    assert stage(work, model, shards, "half", "--shard", "0").returncode == 0
    done = stage(work, model, shards, "half", "--merge", *reports(work, "half"))
    assert done.returncode != 0 and done.stderr.strip().splitlines() == [
        f"error: tokenize: {work / 'half' / 'parts' / 'part-00001.json'} is missing or unreadable: "
        "tokenize shard 1 (--shard 1)"
    ]
    missing = stage(work, work / "no-model.safetensors", shards, "x", *reports(work, "x"))
    assert missing.returncode != 0 and missing.stderr.startswith("error: tokenize: ")
