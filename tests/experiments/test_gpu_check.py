"""experiments/gpu_check.sh: its CPU fallback end to end (the GPU run itself needs a GPU machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]

TOY_GPU_RECIPE = {
    "model": {"decoder": "vocos", "vocos": {"dim": 16, "intermediate_dim": 32, "num_layers": 1}},
    "loss": {
        "adversarial_start_step": 2,
        "discriminator": {"kinds": ["mpd"], "periods": [2], "period_channels": [2, 4]},
    },
}


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the CPU fallback; on a GPU machine run the script itself")
def test_cpu_fallback_runs_every_step_and_prints_the_figures(embedded_corpus, tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "gpu.yaml").write_text(yaml.safe_dump(TOY_GPU_RECIPE))
    work = tmp_path / "work"
    run = subprocess.run(
        [
            str(ROOT / "experiments" / "gpu_check.sh"),
            "--corpus",
            str(embedded_corpus),
            "--format",
            "ulca",
            "--params",
            str(ROOT / "params.yaml"),
            str(ROOT / "workflow" / "params-tiny.yaml"),
            "--recipe-dir",
            str(recipes),
            "--work",
            str(work),
            "--paths-steps",
            "2",
            "--budget-steps",
            "3",
            "--calibration-steps",
            "1",
            "--max-utterances",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "CPU fallback" in out
    assert "code paths: torchrun x1 (DDP), bf16 off (CPU), compile off: 2 steps" in out
    assert "gpu recipe: 3 steps" in out and "peak GPU memory n/a (CPU)" in out and "data wait" in out
    assert "| gpu | 1.2 |" in out  # the metrics table: the toy codec at its 4 levels
    paths = json.loads((work / "paths" / "timings.json").read_text())
    assert paths["steps"] == 2 and paths["peak_gpu_memory_bytes"] is None
    params = yaml.safe_load((work / "paths" / "params.yaml").read_text())
    assert params["train"]["bf16"] is True and params["train"]["compile"] is False
