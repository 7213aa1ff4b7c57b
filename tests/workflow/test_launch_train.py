"""scripts/launch-train.sh: one process per GPU the job was given, plain python below two."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "scripts" / "launch-train.sh"


@pytest.fixture
def fake_bin(tmp_path):
    """A PATH folder whose `python` echoes how it was called and `nvidia-smi` lists two GPUs."""
    (tmp_path / "python").write_text('#!/bin/sh\necho "python $*"\necho "CVD=${CUDA_VISIBLE_DEVICES-unset}"\n')
    (tmp_path / "nvidia-smi").write_text('#!/bin/sh\necho "GPU 0: H100 (UUID: a)"\necho "GPU 1: H100 (UUID: b)"\n')
    for tool in ("python", "nvidia-smi"):
        (tmp_path / tool).chmod(0o755)
    return tmp_path


def launch(fake_bin, *, smi: bool = True, **env) -> subprocess.CompletedProcess:
    if not smi:
        (fake_bin / "nvidia-smi").unlink()
    base = {k: v for k, v in os.environ.items() if k not in ("TELUCODEC_GPUS", "CUDA_VISIBLE_DEVICES")}
    base["PATH"] = f"{fake_bin}:/usr/bin:/bin"
    return subprocess.run([str(LAUNCHER), "--shards", "s", "--out", "o"], env={**base, **env},
                          capture_output=True, text=True)


@pytest.mark.parametrize("env, smi, nproc, visible", [
    ({"TELUCODEC_GPUS": "0"}, True, 0, ""),           # granted none: GPUs hidden
    ({"TELUCODEC_GPUS": "1"}, True, 1, "unset"),
    ({"TELUCODEC_GPUS": "3"}, True, 3, "unset"),      # the granted count wins over what is visible
    ({"CUDA_VISIBLE_DEVICES": "0,2"}, True, 2, "0,2"),  # a scheduler's devices
    ({"CUDA_VISIBLE_DEVICES": ""}, True, 0, ""),
    ({}, True, 2, "unset"),                           # plain `dvc repro`: every GPU of the machine
    ({}, False, 0, ""),                               # no GPU at all: CPU
])
def test_process_count(fake_bin, env, smi, nproc, visible):
    done = launch(fake_bin, smi=smi, **env)
    assert done.returncode == 0, done.stderr
    first, cvd = done.stdout.splitlines()
    if nproc > 1:
        assert first == (f"python -m torch.distributed.run --standalone --nproc_per_node={nproc} "
                         "-m pipeline.train --shards s --out o")
    else:
        assert first == "python -m pipeline.train --shards s --out o"
    assert cvd == f"CVD={visible}"


def test_bad_count_is_an_error(fake_bin):
    done = launch(fake_bin, TELUCODEC_GPUS="two")
    assert done.returncode == 2 and "TELUCODEC_GPUS" in done.stderr and not done.stdout
