"""Ship a trained recipe run as the project's pretrained model: the export and the provenance that rebuilds it.

    python scripts/ship_pretrained.py --run /tmp/rb/9000steps/cpu-best --name telucodec-te \\
        [--step 9000] [--corpus ../shared/corpora/chai-bisket-te] [--out pretrained] [--dtype float16]

``--run`` is a ``benchmarks.recipe_budget`` run folder (``<work>/<budget>/<recipe>``: its ``params.yaml``,
``codec.safetensors``, ``eval/metrics.json``, ``timings.json``). ``--step N`` ships the run's checkpoint at step N
as ``benchmarks.scaling_curve`` exported and scored it (``scaling/step-0000N/``) instead of the weights the run
selected by validation loss. Writes ``<out>/<name>/``:

- ``<name>.safetensors``: the export (``pipeline.export`` with ``export.dtype``), loadable by ``telucodec``;
- ``params.yaml``: the exact params the run trained with (corpus paths as they were);
- ``provenance.json``: model id, steps, the sha256 of the params, of the corpus's index files and of the shards
  manifest, the git commit, torch's version, the wall time and the command that rebuilds it;
- ``scores.json``: the run's test-split scores (codec at every level scored, Opus at every bitrate).

The model card (``MODEL_CARD.md`` beside them) is written by hand from these.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from codec.config.export import ExportConfig
from codec.formats.export import export_codec
from codec.formats.weights import load_codec, read_codec_weights
from codec.runtime.io import file_sha256, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "chai-bisket-te")
    ap.add_argument("--out", type=Path, default=ROOT / "pretrained")
    ap.add_argument("--dtype", choices=("float32", "float16"), default="float16")
    ap.add_argument("--step", type=int, help="ship this checkpoint, as benchmarks.scaling_curve scored it")
    args = ap.parse_args()
    run, target = args.run.resolve(), args.out / args.name
    # The weights and their test-split scores: the run's selected export, or one scored checkpoint.
    chosen = run / "scaling" / f"step-{args.step:08d}" if args.step else run
    weights = chosen / "codec.safetensors"
    metrics = chosen / "metrics.json" if args.step else run / "eval" / "metrics.json"
    missing = [str(p) for p in (run / "params.yaml", weights, metrics) if not p.is_file()]
    if missing:
        sys.exit(f"ship_pretrained: missing {', '.join(missing)} (score the checkpoint with benchmarks.scaling_curve)")
    params = yaml.safe_load((run / "params.yaml").read_text(encoding="utf-8"))
    target.mkdir(parents=True, exist_ok=True)
    codec = load_codec(weights)
    _, _, train_meta = read_codec_weights(weights)
    info = export_codec(
        codec,
        target / f"{args.name}.safetensors",
        ExportConfig(uniform_mix=params["export"]["uniform_mix"], dtype=args.dtype),
        {"stage": "pretrained", "name": args.name, "corpus": args.corpus.name},
    )
    shutil.copy(run / "params.yaml", target / "params.yaml")
    shards = run.parents[1] / "corpus" / "shards" / "manifest.json"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    provenance = {
        "name": args.name,
        "model_id": info.model_id,
        "file_bytes": info.file_bytes,
        "num_parameters": info.num_parameters,
        "dtype": args.dtype,
        "steps": int(params["train"]["steps"]),
        "weights": {k: train_meta[k] for k in ("step", "weights") if k in train_meta},
        "sha256": {
            "params.yaml": file_sha256(run / "params.yaml"),
            "corpus data.json": file_sha256(args.corpus / "data.json"),
            "corpus params.json": file_sha256(args.corpus / "params.json"),
            "shards manifest.json": file_sha256(shards),
            "trained weights (float32)": file_sha256(weights),
        },
        "git_commit": commit,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "train_seconds": json.loads((run / "timings.json").read_text())["seconds"],
        # The checkpoint cadence is part of params.yaml (and so of its hash): the rebuild command passes it.
        "rebuild": (
            f"python -m benchmarks.recipe_budget --corpus {args.corpus} --format ulca --recipes {run.name} "
            f"--budget-steps {params['train']['steps']} --checkpoint-every {params['train']['checkpoint_every']} "
            f"--dnsmos-utterances 0 --work /tmp/rb (at git commit {commit[:12]}), then "
            + (
                f"python -m benchmarks.scaling_curve --runs /tmp/rb/{params['train']['steps']}steps/{run.name} "
                f"--steps {args.step}, then "
                if args.step
                else ""
            )
            + f"python scripts/ship_pretrained.py --run /tmp/rb/{params['train']['steps']}steps/{run.name} "
            f"--name {args.name}" + (f" --step {args.step}" if args.step else "")
        ),
    }
    write_json_atomic(target / "provenance.json", provenance)
    write_json_atomic(target / "scores.json", json.loads(metrics.read_text())["test"])
    print(f"wrote {target}: {info.file_bytes / 1e6:.1f} MB, model id {info.model_id[:16]}")


if __name__ == "__main__":
    main()
