"""The `export` stage CLI: trained weights -> portable export the telucodec CLI loads."""

import json
import os
import subprocess
import sys

import torch

from codec.config.model import ModelConfig
from codec.config.quantizer import QuantizerConfig
from codec.formats.export import load_export
from codec.formats.weights import save_codec_weights
from codec.model.codec import build_codec
from pipeline.export import main as export_main


def _stage(repo_root, cwd, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": repo_root, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.export", *args, "--params", os.path.join(repo_root, "params.yaml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


def test_stage_exports_into_a_folder_and_rejects_bad_weights(tmp_path, repo_root, monkeypatch, capsys):
    torch.manual_seed(0)
    codec = build_codec(
        ModelConfig(channels=4, latent_dim=16, n_residual_layers=1),
        QuantizerConfig(num_levels=4, codebook_size=32),
        16000,
    )
    save_codec_weights(tmp_path / "codec.safetensors", codec.state_dict(), codec.config, {"stage": "train"})
    (tmp_path / "models").mkdir()
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 64)

    # In process (an interpreter start costs seconds); the failure below runs as a real process.
    monkeypatch.chdir(tmp_path)
    export_main(
        [
            "--model",
            "codec.safetensors",
            "--out",
            "models",
            "--metrics",
            "reports/export.json",
            "--params",
            os.path.join(repo_root, "params.yaml"),
        ]
    )
    exported = load_export(tmp_path / "models" / "telucodec.safetensors")
    metrics = json.loads((tmp_path / "reports" / "export.json").read_text())
    assert metrics["model_id"] == exported.model_id and exported.model_id[:32] in capsys.readouterr().out
    assert metrics["nominal_kbps"] == codec.bitrate_kbps()
    for name, tensor in codec.state_dict().items():
        assert torch.equal(exported.codec.state_dict()[name], tensor), name

    bad = _stage(repo_root, tmp_path, "--model", "broken.safetensors", "--out", "bad.safetensors")
    assert bad.returncode != 0 and "error: export:" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad.safetensors").exists()
