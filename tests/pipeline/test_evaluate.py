"""The `evaluate` stage CLI end to end on a tiny codec and tiny shards, and its clean failures."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from codec.config.model import ModelConfig
from codec.config.quantizer import QuantizerConfig
from codec.data.tone_shards import write_synthetic_shards
from codec.formats.weights import save_codec_weights
from codec.model.codec import build_codec
from pipeline.evaluate import main

HAS_OPUS = shutil.which("opusenc") is not None and shutil.which("opusdec") is not None
OUTPUTS = [
    "--metrics",
    "reports/metrics.json",
    "--scores",
    "reports/scores",
    "--plots",
    "reports/rd",
    "--out-dir",
    "reports/eval",
    "--html",
    "reports/index.html",
]


def _setup(tmp_path, repo_root):
    params = yaml.safe_load(open(os.path.join(repo_root, "params.yaml"), encoding="utf-8"))
    params["evaluate"].update(
        levels=[1, 4, 12],
        opus_kbps=[6],
        max_utterances=2,
        examples=1,
        device="cpu",
        dnsmos_utterances=1,
        speaker_similarity=True,
        extra_corpora=[{"name": "absent", "path": str(tmp_path / "no-corpus")}],
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    torch.manual_seed(0)
    codec = build_codec(
        ModelConfig(channels=4, latent_dim=16, n_residual_layers=1),
        QuantizerConfig(num_levels=4, codebook_size=32),
        params["sample_rate"],
    )
    save_codec_weights(tmp_path / "codec.safetensors", codec.state_dict(), codec.config)
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00" * 64)
    # Shards whose manifest lists an empty test split.
    empty = write_synthetic_shards(tmp_path / "empty", train_rows=2, valid_rows=1, num_shards=1)
    manifest = json.loads((empty / "manifest.json").read_text())
    manifest["splits"]["test"] = {"rows": 0, "seconds": 0.0, "files": []}
    (empty / "manifest.json").write_text(json.dumps(manifest))


def _cli(repo_root, tmp_path, model, shards, name) -> subprocess.Popen:
    outputs = [a.replace("reports", f"reports{name}") for a in OUTPUTS]
    env = {**os.environ, "PYTHONPATH": repo_root, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline.evaluate",
            "--model",
            model,
            "--shards",
            str(shards),
            *outputs,
            "--params",
            "params.yaml",
        ],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_cli_writes_the_report(tmp_path, repo_root, tiny_shards):
    _setup(tmp_path, repo_root)
    proc = _cli(repo_root, tmp_path, "codec.safetensors", tiny_shards, "")
    run = subprocess.CompletedProcess(proc.args, proc.wait(timeout=300), *proc.communicate())
    assert run.returncode == 0, run.stderr
    assert "evaluate: 2 test utterances; codec q4 (1 kbps)" in run.stdout
    assert "extra corpus 'absent' skipped" in run.stderr
    reports = tmp_path / "reports"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert sorted(metrics["test"]["codec"]) == ["q1", "q4"]  # 12 levels clipped to the model's 4
    assert sorted(metrics["test"].get("opus", {})) == (["6kbps"] if HAS_OPUS else [])
    # Speaker similarity for every system: Opus scored, this untrained codec's silence not (the shipped codec's test
    # below is scored).
    assert all(0 < s["speaker_similarity"] <= 1 for s in metrics["test"].get("opus", {}).values())
    assert all("speaker_similarity" in s for s in metrics["test"]["codec"].values())
    timings = json.loads((tmp_path / "reports" / "timings" / "evaluate.json").read_text())
    assert timings["encode_rtf"] > 0 and timings["decode_rtf"] > 0 and "speed" not in metrics
    assert metrics["test"]["codec"]["q4"]["kbps"] == 1.0 and "absent" not in metrics
    lines = (reports / "eval" / "utterances.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * (3 if HAS_OPUS else 2)
    assert (reports / "rd" / "test_codec.csv").is_file()
    page = (reports / "index.html").read_text()
    assert "eval/examples/test/00/original.wav" in page and "absent" in page
    assert (reports / "eval" / "examples" / "test" / "00" / "codec_q1.wav").is_file()
    assert json.loads((reports / "eval" / "run.json").read_text())["unavailable_corpora"].keys() == {"absent"}
    assert "reference" not in metrics["test"] and "★" not in page  # no --reference: no reference rows


@pytest.mark.parametrize(
    "model, shards, needle",
    [
        ("nowhere.safetensors", None, "nowhere.safetensors: no such codec weights file"),
        ("corrupt.safetensors", None, "corrupt.safetensors: not a readable safetensors file"),
        ("codec.safetensors", "empty", "'test' split is empty"),
    ],
)
def test_bad_input_exits_with_a_clear_message(tmp_path, repo_root, tiny_shards, model, shards, needle):
    # In-process (an interpreter start costs seconds): SystemExit with a message is exit status 1.
    _setup(tmp_path, repo_root)
    outputs = [str(tmp_path / a) if a.startswith("reports") else a for a in OUTPUTS]
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--model",
                str(tmp_path / model),
                "--shards",
                str(tmp_path / shards if shards else tiny_shards),
                *outputs,
                "--params",
                str(tmp_path / "params.yaml"),
            ]
        )
    message = str(exit_info.value.code)
    assert message.startswith("error: evaluate:") and needle in message
    assert not (tmp_path / "reports").exists()


def test_the_shipped_export_is_scored_as_trained_weights_are(tmp_path, repo_root, tiny_shards):
    """`evaluate --model pretrained/telucodec-te/telucodec-te.safetensors` refused the export ('unexpected tensors
    ['entropy.probabilities']'): a user could not score the shipped codec on their own corpus."""
    from codec.cli.common import PRETRAINED_MODEL

    _setup(tmp_path, repo_root)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["evaluate"].update(levels=[12], opus_kbps=[], max_utterances=1, dnsmos_utterances=0, extra_corpora=[])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    outputs = [str(tmp_path / a) if a.startswith("reports") else a for a in OUTPUTS]
    main(
        [
            "--model",
            str(PRETRAINED_MODEL),
            "--shards",
            str(tiny_shards),
            *outputs,
            "--params",
            str(tmp_path / "params.yaml"),
        ]
    )
    codec = json.loads((tmp_path / "reports" / "metrics.json").read_text())["test"]["codec"]
    assert list(codec) == ["q12"] and codec["q12"]["kbps"] == 6.0 and codec["q12"]["stoi"] is not None
    assert codec["q12"]["speaker_similarity"] > 0.8


def test_the_shipped_codec_is_scored_beside_the_model_on_the_same_utterances(tmp_path, repo_root, tiny_shards):
    """`--reference pretrained/telucodec-te/telucodec-te.safetensors` (dvc.yaml's evaluate does it): its rows on the
    same test utterances at evaluate.levels clipped to its 12 levels, under test.reference in metrics.json (not in the
    DVC metrics), marked on the page with its training steps."""
    from codec.cli.common import PRETRAINED_MODEL

    _setup(tmp_path, repo_root)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["evaluate"].update(opus_kbps=[], dnsmos_utterances=0, speaker_similarity=False, extra_corpora=[])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    outputs = [str(tmp_path / a) if a.startswith("reports") else a for a in OUTPUTS]
    model = str(tmp_path / "codec.safetensors")
    main(["--model", model, "--shards", str(tiny_shards), *outputs, "--params", str(tmp_path / "params.yaml"),
          "--reference", str(PRETRAINED_MODEL)])  # fmt: skip
    reports = tmp_path / "reports"
    test = json.loads((reports / "metrics.json").read_text())["test"]
    assert sorted(test["codec"]) == ["q1", "q4"]  # the tiny model: 4 levels
    shipped = test["reference"]["telucodec-te"]
    assert sorted(shipped) == ["q1", "q12", "q4", "utterances"] and shipped["utterances"] == test["utterances"] == 2
    assert shipped["q12"]["kbps"] == 6.0 and shipped["q12"]["mel_distance"] < test["codec"]["q4"]["mel_distance"]
    assert shipped["q12"]["stoi"] is not None and shipped["q12"]["dnsmos_ovrl"] is None  # no DNSMOS for the reference
    # No DVC metric file of its own: `dvc metrics diff` shows only the trained model and Opus.
    assert sorted(p.name for p in (reports / "scores" / "test").iterdir()) == [
        "00.25kbps-codec.json",
        "01.00kbps-codec.json",
    ]
    with open(reports / "eval" / "utterances.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_system = {(r["system"], r["setting"]): [] for r in rows}
    for r in rows:
        by_system[(r["system"], r["setting"])].append(r["utterance"])
    assert by_system[("reference:telucodec-te", "q12")] == by_system[("codec", "q4")] and len(rows) == 2 * 5
    page = (reports / "index.html").read_text()
    # All its steps: the shipped model was continued over three runs, the last of 14,000 steps.
    provenance = json.loads((PRETRAINED_MODEL.parent / "provenance.json").read_text(encoding="utf-8"))
    assert provenance["total_steps"] > provenance["steps"]
    assert f"★ telucodec-te (shipped; trained on real speech, {provenance['total_steps']:,} steps)" in page
    assert page.count('<tr class="reference">') == 3 and "★ telucodec-te q12" in page
    assert (reports / "eval" / "examples" / "test" / "00" / "reference_telucodec-te_q12.wav").is_file()
