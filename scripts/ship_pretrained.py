"""Ship a trained recipe run as the project's pretrained model: the export and the provenance that rebuilds it.

    python scripts/ship_pretrained.py --run runs/rb/9000steps/cpu-best --name telucodec-te \\
        [--step 9000] [--init-from pretrained/telucodec-te/telucodec-te.safetensors] \\
        [--init-provenance pretrained/telucodec-te/provenance.json] [--recipe-dir workflow/recipes/finetune] \\
        [--corpus ../shared/corpora/chai-bisket-te] [--out pretrained] [--dtype float16]

``--run`` is a ``experiments.recipe_budget`` run folder (``<work>/<budget>/<recipe>``: its ``params.yaml``,
``codec.safetensors``, ``eval/metrics.json``, ``timings.json``). ``--step N`` ships the run's checkpoint at step N
as ``experiments.scaling_curve`` exported and scored it (``scaling/step-0000N/``) instead of the weights the run
selected by validation loss. ``--init-from`` names the export the run started from (``recipe_budget --init-from``),
recorded with its model id and the git commit that holds it when git tracks it. ``--init-provenance`` is the
``provenance.json`` of the run that made that export (a shipped model's, or this script's output for a run that
was not shipped, e.g. ``--out runs/ship``): it is kept inside this one, so a model continued over several runs
records every one of them, its steps and seconds are added to the totals, and its rebuild command comes first.
``--recipe-dir`` is where the run's recipe lives (``recipe_budget --recipe-dir``), for the rebuild command.
Writes ``<out>/<name>/``:

- ``<name>.safetensors``: the export (``pipeline.export`` with ``export.dtype``), loadable by ``telucodec``;
- ``params.yaml``: the exact params the run trained with, paths made portable: the corpus and the work folder
  relative to the checkout when they lie beside or inside it, else ``<corpus>`` / ``<work>`` placeholders (the
  card says what they stand for); the sha256 of the run's own file is kept in the provenance;
- ``provenance.json``: model id, steps, the sha256 of the params, of the corpus's index files and of the shards
  manifest, the git commit it was shipped from and the one the run executed, torch's version, the wall time, the
  export it started from and the command that rebuilds it (run from the checkout's root);
- ``scores.json``: the run's test-split scores (codec at every level scored, Opus at every bitrate).

The model card (``MODEL_CARD.md`` beside them) is written by hand from these.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from codec.config.export import ExportConfig
from codec.formats.export import export_codec, load_export
from codec.formats.weights import load_codec, read_codec_weights
from codec.runtime.io import file_sha256, write_json_atomic
from codec.train.loop import run_seconds

ROOT = Path(__file__).resolve().parents[1]


def portable(path: Path, placeholder: str) -> str:
    """``path`` relative to the checkout when it lies inside it or beside it (``../shared/...``), else
    ``placeholder``: a provenance that names one machine's folders helps nobody rebuild."""
    path = path.resolve()
    for base, prefix in ((ROOT, ""), (ROOT.parent, "../")):
        if path.is_relative_to(base):
            return prefix + path.relative_to(base).as_posix()
    return placeholder


def train_seconds(timings: dict) -> dict:
    """The run's training seconds over every session (:func:`codec.train.loop.run_seconds`); for a run resumed
    from a checkpoint whose earlier seconds are not on record, the last session's, said so."""
    out: dict = {"train_seconds": run_seconds(timings)}
    if timings.get("total_seconds") is None and timings.get("resumed_from") is not None:
        out["train_seconds_note"] = (
            f"the last session's only (steps {timings['resumed_from']}-{timings['steps']}): the earlier ones' "
            "seconds were not recorded"
        )
    return out


def chain(provenance: dict, init: dict | None) -> dict:
    """``provenance`` with the run that made its starting point folded in: ``total_steps`` and
    ``total_train_seconds`` over the whole chain (seconds ``None`` when a run's are not on record) and the
    rebuild commands in order. A run that started from seeded codebooks is its own chain."""
    if init is None:
        return {**provenance, "total_steps": provenance["steps"], "total_train_seconds": provenance["train_seconds"]}
    init_seconds = init.get("total_train_seconds", init.get("train_seconds"))
    return {
        **provenance,
        "total_steps": provenance["steps"] + init.get("total_steps", init["steps"]),
        "total_train_seconds": None
        if init_seconds is None or provenance["train_seconds"] is None
        else provenance["train_seconds"] + init_seconds,
        "rebuild": f"{init['rebuild']}; then {provenance['rebuild']}",
    }


def tracked_commit(path: Path, root: Path = ROOT) -> str | None:
    """The last commit that wrote ``path`` when the git checkout at ``root`` tracks it unchanged (a shipped
    export), else ``None`` (untracked, modified, or outside the checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    path, root = path.resolve(), root.resolve()
    if not path.is_relative_to(root):
        return None
    rel = path.relative_to(root).as_posix()
    if not git("ls-files", "--", rel) or git("status", "--porcelain", "--", rel):
        return None
    return git("log", "-1", "--format=%H", "--", rel) or None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "chai-bisket-te")
    ap.add_argument("--out", type=Path, default=ROOT / "pretrained")
    ap.add_argument("--dtype", choices=("float32", "float16"), default="float16")
    ap.add_argument("--step", type=int, help="ship this checkpoint, as experiments.scaling_curve scored it")
    ap.add_argument("--init-from", type=Path, help="the export the run started from (recipe_budget --init-from)")
    ap.add_argument("--init-provenance", type=Path, help="provenance.json of the run that made --init-from")
    ap.add_argument("--recipe-dir", type=Path, help="the run's recipe folder when not workflow/recipes/")
    ap.add_argument("--run-commit", help="the commit the run executed (scripts/pinned_run.sh's snapshot), if not HEAD")
    args = ap.parse_args()
    if args.init_provenance and not args.init_from:
        sys.exit("ship_pretrained: --init-provenance describes the --init-from export: name it too")
    init = json.loads(args.init_provenance.read_text(encoding="utf-8")) if args.init_provenance else None
    init_id = load_export(args.init_from).model_id if args.init_from else None
    if init is not None and init["model_id"] != init_id:
        sys.exit(f"ship_pretrained: {args.init_provenance} is model {init['model_id'][:16]}, not {args.init_from}'s")
    run, target = args.run.resolve(), args.out / args.name
    # The weights and their test-split scores: the run's selected export, or one scored checkpoint.
    chosen = run / "scaling" / f"step-{args.step:08d}" if args.step else run
    weights = chosen / "codec.safetensors"
    metrics = chosen / "metrics.json" if args.step else run / "eval" / "metrics.json"
    missing = [str(p) for p in (run / "params.yaml", weights, metrics) if not p.is_file()]
    if missing:
        sys.exit(f"ship_pretrained: missing {', '.join(missing)} (score the checkpoint with experiments.scaling_curve)")
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
    work = run.parents[1]
    corpus, work_name = portable(args.corpus, "<corpus>"), portable(work, "<work>")
    text = (run / "params.yaml").read_text(encoding="utf-8")
    text = text.replace(str(args.corpus.resolve()), corpus).replace(str(work), work_name)
    (target / "params.yaml").write_text(text, encoding="utf-8")
    shards = work / "corpus" / "shards" / "manifest.json"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    run_commit = args.run_commit or commit
    # The paths the rebuild command names, as a clone spells them (relative to its root where they lie in it).
    init_from, init_provenance, recipe_dir, out = (
        None if path is None else portable(path, str(path))
        for path in (args.init_from, args.init_provenance, args.recipe_dir, args.out)
    )
    provenance = {
        "name": args.name,
        "model_id": info.model_id,
        "file_bytes": info.file_bytes,
        "num_parameters": info.num_parameters,
        "dtype": args.dtype,
        "steps": int(params["train"]["steps"]),
        "weights": {k: train_meta[k] for k in ("step", "weights") if k in train_meta},
        "sha256": {
            "params.yaml (the run's, before its paths were made portable)": file_sha256(run / "params.yaml"),
            "corpus data.json": file_sha256(args.corpus / "data.json"),
            "corpus params.json": file_sha256(args.corpus / "params.json"),
            "shards manifest.json": file_sha256(shards),
            "trained weights (float32)": file_sha256(weights),
        },
        "git_commit": commit,
        "run_commit": run_commit,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        **train_seconds(json.loads((run / "timings.json").read_text())),
        "init_from": None
        if args.init_from is None
        else {
            "export": init_from,
            "model_id": init_id,
            "export_commit": tracked_commit(args.init_from),
            "provenance": init,
        },
        # The checkpoint cadence is part of params.yaml (and so of its hash): the rebuild command passes it.
        # Paths relative to the checkout's root (the corpus beside it, as ../shared/ is on a developer machine).
        "rebuild": (
            f"python -m experiments.recipe_budget --corpus {corpus} --format ulca --recipes {run.name} "
            + (f"--recipe-dir {recipe_dir} " if recipe_dir else "")
            + f"--budget-steps {params['train']['steps']} --checkpoint-every {params['train']['checkpoint_every']} "
            + (f"--init-from {init_from} " if init_from else "")
            + f"--dnsmos-utterances 0 --work runs/rb (at git commit {run_commit[:12]}), then "
            + (
                f"python -m experiments.scaling_curve --runs runs/rb/{params['train']['steps']}steps/{run.name} "
                f"--steps {args.step}, then "
                if args.step
                else ""
            )
            + f"python scripts/ship_pretrained.py --run runs/rb/{params['train']['steps']}steps/{run.name} "
            f"--name {args.name}"
            + (f" --step {args.step}" if args.step else "")
            + (f" --init-from {init_from}" if init_from else "")
            + (f" --init-provenance {init_provenance}" if init_provenance else "")
            + (f" --recipe-dir {recipe_dir}" if recipe_dir else "")
            + (f" --run-commit {run_commit[:12]}" if args.run_commit else "")
            + (f" --out {out}" if args.out.resolve() != (ROOT / "pretrained") else "")
            + (f" --dtype {args.dtype}" if args.dtype != "float16" else "")
        ),
    }
    write_json_atomic(target / "provenance.json", chain(provenance, init))
    write_json_atomic(target / "scores.json", json.loads(metrics.read_text())["test"])
    print(f"wrote {target}: {info.file_bytes / 1e6:.1f} MB, model id {info.model_id[:16]}")


if __name__ == "__main__":
    main()
