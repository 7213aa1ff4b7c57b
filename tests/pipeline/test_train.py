"""The `train` stage CLI: trains, logs with dvclive, resumes, and fails cleanly on bad input."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from codec.config.model import ModelConfig
from codec.config.quantizer import QuantizerConfig
from codec.data.tone_shards import write_synthetic_shards
from codec.formats.weights import load_codec, save_codec_weights
from codec.model.codec import build_codec

TINY_LOSS = {
    "stft_fft_sizes": [64, 128],
    "mel_fft_sizes": [64, 128],
    "mel_n_mels": 16,
    "discriminator": {"channels": 2, "fft_sizes": [64, 128], "dilations": [1]},
}
TINY_TRAIN = {
    "steps": 4,
    "batch_size": 4,
    "segment_seconds": 0.032,
    "num_workers": 0,
    "log_every": 2,
    "validate_every": 2,
    "valid_segment_seconds": 0.032,
    "valid_max_examples": 8,
    "checkpoint_every": 2,
    "device": "cpu",
}


def _setup(tmp_path, repo_root):
    params = yaml.safe_load(open(os.path.join(repo_root, "params.yaml"), encoding="utf-8"))
    params["loss"].update(TINY_LOSS)
    params["train"].update(TINY_TRAIN)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shards = write_synthetic_shards(tmp_path / "shards", sample_rate=params["sample_rate"])
    torch.manual_seed(0)
    codec = build_codec(
        ModelConfig(channels=4, latent_dim=8, strides=[2, 4], n_residual_layers=1),
        QuantizerConfig(num_levels=2, codebook_size=16),
        params["sample_rate"],
    )
    save_codec_weights(tmp_path / "seed.safetensors", codec.state_dict(), codec.config)
    return shards


def _cli(repo_root, tmp_path, init="seed.safetensors", name="") -> subprocess.Popen:
    args = [
        "--shards",
        "shards",
        "--init",
        init,
        "--checkpoints",
        f"models{name}/checkpoints",
        "--out",
        f"models{name}/codec.safetensors",
        "--live",
        f"reports{name}/train",
        "--params",
        "params.yaml",
    ]
    env = {**os.environ, "PYTHONPATH": repo_root, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.train", *args],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_cli_trains_logs_resumes_and_rejects_a_bad_init(tmp_path, repo_root):
    _setup(tmp_path, repo_root)
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 64)
    # Both at once: each interpreter start costs seconds (torch import).
    run, bad = _cli(repo_root, tmp_path), _cli(repo_root, tmp_path, init="broken.safetensors", name="_bad")
    run, bad = _wait(run), _wait(bad)
    assert bad.returncode != 0
    assert "error: train:" in bad.stderr and "broken.safetensors" in bad.stderr and "Traceback" not in bad.stderr
    assert run.returncode == 0, run.stderr
    assert "train: 4 steps (0 skipped)" in run.stdout
    codec = load_codec(tmp_path / "models" / "codec.safetensors")
    assert codec.quantizer.num_levels == 2
    summary = json.loads((tmp_path / "reports" / "train" / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["best"]["metric"] == "snr_db"
    assert "valid" not in summary  # dvclive's metrics.json holds the last validation: no second copy
    assert "seconds" not in summary and "examples_per_second" not in summary  # timings apart: see below
    timings = json.loads((tmp_path / "reports" / "timings" / "train.json").read_text())
    assert timings["examples_per_second"] > 0 and timings["steps"] == 4
    live = json.loads((tmp_path / "reports" / "train" / "metrics.json").read_text())
    assert "snr_db" in live["valid"] and "total" in live["train"]["loss"]
    assert not (tmp_path / "dvc.yaml").exists() and not (tmp_path / "reports" / "train" / "dvc.yaml").exists()
    assert sorted(p.name for p in (tmp_path / "models" / "checkpoints").iterdir()) == [
        "best.pt",
        "step-00000002.pt",
        "step-00000004.pt",
    ]

    live_dir = tmp_path / "reports" / "train"
    before = {p.relative_to(live_dir): p.read_bytes() for p in sorted(live_dir.rglob("*")) if p.is_file()}
    again = _wait(_cli(repo_root, tmp_path))  # finds the finished run's checkpoint: nothing left to train
    assert again.returncode == 0, again.stderr
    assert "train: 4 steps" in again.stdout
    assert torch.equal(
        load_codec(tmp_path / "models" / "codec.safetensors").decoder.output_scale, codec.decoder.output_scale
    )

    # `dvc repro -f`, or a mistyped parameter under `dvc repro` (DVC deletes the outputs before the command
    # refuses the params): the finished run's checkpoint has this run's fingerprint, so it is replayed, not
    # trained again, and every output comes back byte for byte.
    outputs = [tmp_path / "models" / "codec.safetensors", *sorted(p for p in live_dir.rglob("*") if p.is_file())]
    before = {p: p.read_bytes() for p in outputs}
    good = (tmp_path / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(good.replace("  steps: 4", "  stpes: 4"))
    typo = _wait(_cli(repo_root, tmp_path))
    assert typo.returncode != 0 and "Traceback" not in typo.stderr
    assert "params.train: unknown key(s) ['stpes'] (did you mean 'stpes' -> 'steps'?)" in typo.stderr
    shutil.rmtree(live_dir)
    (tmp_path / "models" / "codec.safetensors").unlink()
    (tmp_path / "params.yaml").write_text(good)
    replayed = _wait(_cli(repo_root, tmp_path))
    assert replayed.returncode == 0, replayed.stderr
    assert "resumed from step 4 of this very run" in replayed.stdout
    assert "nothing left to train" in replayed.stdout and "starting afresh" not in replayed.stderr
    assert {p: p.read_bytes() for p in outputs} == before
    assert live_dir / "plots" / "metrics" / "valid" / "snr_db.tsv" in outputs
    assert not (tmp_path / "models" / "checkpoints" / "stale").exists()


def test_sigterm_mid_run_checkpoints_the_current_step_and_exits_143(tmp_path, repo_root):
    """A SLURM time limit or `kill`: the run finishes its step, keeps it in a checkpoint, and says so."""
    _setup(tmp_path, repo_root)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["train"].update(steps=100_000, checkpoint_every=50_000, validate_every=50_000, num_workers=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _cli(repo_root, tmp_path)
    logged = tmp_path / "reports" / "train" / "plots" / "metrics" / "train" / "loss" / "total.tsv"
    deadline = time.monotonic() + 240
    while not logged.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # until training has logged its first steps
    proc.send_signal(signal.SIGTERM)
    done = _wait(proc)
    assert done.returncode == 143, done.stderr
    stopped = re.search(r"train: SIGTERM: stopped after step (\d+) of 100000; checkpoint (\S+): the same", done.stderr)
    assert stopped and done.stderr.rstrip().endswith("train: terminated"), done.stderr
    step = int(stopped.group(1))
    folder = tmp_path / "models" / "checkpoints"
    assert step >= 2 and stopped.group(2) == str(Path("models/checkpoints") / f"step-{step:08d}.pt")
    assert sorted(p.name for p in folder.iterdir()) == [f"step-{step:08d}.pt"]  # no temporary file left
    assert not (tmp_path / "models" / "codec.safetensors").exists()  # no export of an unfinished run


def test_checkpoints_from_other_code_are_set_aside_with_the_reason(tmp_path, repo_root):
    _setup(tmp_path, repo_root)
    assert _wait(_cli(repo_root, tmp_path)).returncode == 0
    # The same run with one edited file of the codec package (a copy of it, first on the path).
    src = tmp_path / "src"
    shutil.copytree(Path(repo_root) / "codec", src / "codec", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(Path(repo_root) / "pipeline", src / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    with open(src / "codec" / "losses.py", "a", encoding="utf-8") as f:
        f.write("\n# edited\n")
    edited = _wait(_cli(str(src), tmp_path))
    assert edited.returncode == 0, edited.stderr
    assert "it was written with other code than this run's; starting afresh" in edited.stderr
    assert "resumed" not in edited.stdout
    assert (tmp_path / "models" / "checkpoints" / "stale" / "step-00000004.pt").is_file()
