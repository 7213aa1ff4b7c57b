"""workflow/launch-train.sh: one process per GPU the job was given, plain python below two; several nodes."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "workflow" / "launch-train.sh"


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
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CUDA_VISIBLE_DEVICES",) and not k.startswith(("TELUCODEC_", "SLURM_"))
    }
    base["PATH"] = f"{fake_bin}:/usr/bin:/bin"
    return subprocess.run(
        [str(LAUNCHER), "--shards", "s", "--out", "o"], env={**base, **env}, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    "env, smi, nproc, visible",
    [
        ({"TELUCODEC_GPUS": "0"}, True, 0, ""),  # granted none: GPUs hidden
        ({"TELUCODEC_GPUS": "1"}, True, 1, "unset"),
        ({"TELUCODEC_GPUS": "3"}, True, 3, "unset"),  # the granted count wins over what is visible
        ({"CUDA_VISIBLE_DEVICES": "0,2"}, True, 2, "0,2"),  # a scheduler's devices
        ({"CUDA_VISIBLE_DEVICES": ""}, True, 0, ""),
        ({}, True, 2, "unset"),  # plain `dvc repro`: every GPU of the machine
        ({}, False, 0, ""),  # no GPU at all: CPU
    ],
)
def test_process_count(fake_bin, env, smi, nproc, visible):
    done = launch(fake_bin, smi=smi, **env)
    assert done.returncode == 0, done.stderr
    first, cvd = done.stdout.splitlines()
    if nproc > 1:
        assert first == (
            f"python -m torch.distributed.run --standalone --nproc_per_node={nproc} "
            "-m pipeline.train --shards s --out o"
        )
    else:
        assert first == "python -m pipeline.train --shards s --out o"
    assert cvd == f"CVD={visible}"


def test_bad_count_is_an_error(fake_bin):
    done = launch(fake_bin, TELUCODEC_GPUS="two")
    assert done.returncode == 2 and "TELUCODEC_GPUS" in done.stderr and not done.stdout


def test_one_node_of_a_multi_node_run_runs_torchrun_with_a_rendezvous(fake_bin):
    # What each node runs (srun starts the script there with the endpoint set): N / M processes a node.
    done = launch(
        fake_bin,
        TELUCODEC_GPUS="8",
        TELUCODEC_NODES="2",
        TELUCODEC_RDZV_ENDPOINT="node1:29600",
        TELUCODEC_RDZV_ID="job7",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        "python -m torch.distributed.run --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d "
        "--rdzv_endpoint=node1:29600 --rdzv_id=job7 -m pipeline.train --shards s --out o"
    )
    cpu = launch(fake_bin, TELUCODEC_GPUS="0", TELUCODEC_NODES="2", TELUCODEC_RDZV_ENDPOINT="127.0.0.1:1234")
    assert "--nnodes=2 --nproc_per_node=1" in cpu.stdout and "CVD=" in cpu.stdout.splitlines()[1]


def test_a_slurm_allocation_of_several_nodes_starts_one_launcher_per_node(fake_bin):
    (fake_bin / "srun").write_text(
        '#!/bin/sh\necho "srun $*"\necho "ENDPOINT=$TELUCODEC_RDZV_ENDPOINT ID=$TELUCODEC_RDZV_ID"\n'
    )
    (fake_bin / "hostname").write_text("#!/bin/sh\necho gpu-a01\n")  # the batch step's node
    for tool in ("srun", "hostname"):
        (fake_bin / tool).chmod(0o755)
    done = launch(
        fake_bin, TELUCODEC_GPUS="8", SLURM_JOB_NUM_NODES="2", SLURM_JOB_NODELIST="gpu-a[01-02]", SLURM_JOB_ID="4242"
    )
    assert done.returncode == 0, done.stderr
    srun, env = done.stdout.splitlines()
    assert srun == (f"srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=1 {LAUNCHER} --shards s --out o")
    assert env == f"ENDPOINT=gpu-a01:{29500 + 4242 % 2000} ID=telucodec-4242"
    assert "2 nodes x 4 processes" in done.stderr


@pytest.mark.parametrize(
    "env, message",
    [
        ({"TELUCODEC_GPUS": "3", "TELUCODEC_NODES": "2", "TELUCODEC_RDZV_ENDPOINT": "h:1"}, "do not split evenly"),
        ({"TELUCODEC_GPUS": "2", "TELUCODEC_NODES": "2"}, "outside a SLURM allocation"),
        ({"TELUCODEC_NODES": "zero"}, "TELUCODEC_NODES"),
    ],
)
def test_multi_node_misuse_is_an_error(fake_bin, env, message):
    done = launch(fake_bin, **env)
    assert done.returncode == 2 and message in done.stderr and not done.stdout
