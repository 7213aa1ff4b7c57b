"""The GPU check in one command: the GPU recipe trained for a few minutes and scored, then the CUDA-only code paths.

    experiments/gpu_check.sh [--bundle DIR] [--corpus DIR --format F] [--minutes 2] [--work DIR]

1. ``recipe_budget.py --recipes gpu --budget-minutes M``: calibration, training for M minutes (bf16 autocast on
   CUDA), evaluation beside Opus; prints examples/s, the share of step time spent waiting for data, peak GPU
   memory and the metrics table.
2. Code paths: ``torchrun --standalone --nproc_per_node 1 -m pipeline.train`` of the ``gpu`` recipe for
   ``--paths-steps`` steps with bf16 autocast and ``torch.compile``: one process in a process group, so the
   DDP wrapper and the collectives run as on many GPUs. It starts from step 1's seeded codebooks. Without CUDA
   (the CPU fallback) the same run goes through gloo, in float32 and uncompiled, and says so.

The figures come first because they are what a lease of a GPU machine is for: a compile that fails or outlasts
``--paths-timeout`` is reported (exit status 1) after them, not instead of them. On one H200 the steps before
training took 3.5 minutes (seeding 50,000 frames: 165 s) and the compile did not finish in 150 s, hence
``--minutes 2`` to fit a 10-minute call; other arguments go to recipe_budget.py as they are.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from experiments.recipe_budget import RECIPES, base_params, build_parser, prepare_corpus, recipe_params, seed_path
from experiments.stage_runs import ROOT, run_stage, seed_args, train_args, write_params
from pipeline.params import merge_params as merge


def check_code_paths(args: argparse.Namespace, cuda: bool) -> dict:
    """A short torchrun training of the gpu recipe (bf16 + compile on CUDA); returns its timings."""
    work = args.work / "paths"
    base = base_params(
        build_parser().parse_args(
            ["--corpus", str(args.corpus), "--format", args.format, "--params", *map(str, args.params)]
            + ["--max-utterances", "1", "--dnsmos-utterances", "0"]
        )
    )
    shards = prepare_corpus(base, args.work / "corpus")
    recipe = recipe_params(base, args.recipe_dir, args.recipe)
    data = merge(
        recipe,
        {
            "train": {
                "steps": args.paths_steps,
                "validate_every": args.paths_steps,
                "bf16": True,
                "compile": cuda,
                "checkpoint_every": args.paths_steps,
                "valid_max_examples": 4,
            }
        },
    )
    params = work / "params.yaml"
    write_params(data, params, f"recipe {args.recipe}")
    seed = seed_path(args.work, recipe)  # the budget run's seed when it ran first (same seed sections)
    run_stage(
        seed_args(shards, seed, params),
        done=seed,
        log=seed.with_suffix(".log"),
    )
    # The train stage's own command (dvc.yaml's flags) under torchrun x1, not through workflow/launch-train.sh,
    # which would run one plain process on one GPU.
    train = train_args(shards, seed, work, params)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", *train]
    print("$ " + " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, cwd=ROOT, timeout=args.paths_timeout)
    return json.loads((work / "timings.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "chai-bisket-te")
    parser.add_argument("--format", default="ulca")
    parser.add_argument("--minutes", type=float, default=2.0, help="training budget of the gpu recipe")
    parser.add_argument("--work", type=Path, default=Path("/tmp/telucodec-gpu-check"))
    parser.add_argument("--recipe", default="gpu")
    parser.add_argument("--recipe-dir", type=Path, default=RECIPES)
    parser.add_argument("--params", type=Path, nargs="+", default=[ROOT / "params.yaml"])
    parser.add_argument("--paths-steps", type=int, default=20, help="steps of the code-path run")
    parser.add_argument(
        "--paths-timeout", type=float, default=300.0, help="seconds the code-path run (compile included) may take"
    )
    args, rest = parser.parse_known_args()
    args.work = args.work.resolve()
    import torch

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "no CUDA device: CPU fallback (gloo, float32, uncompiled)"
    print(f"gpu_check: torch {torch.__version__}, {device}", flush=True)

    budget = ["--budget-minutes", f"{args.minutes:g}"] if "--budget-steps" not in rest else []
    out = args.work / "results"
    command = [
        sys.executable,
        "-m",
        "experiments.recipe_budget",
        "--corpus",
        str(args.corpus),
        "--format",
        args.format,
        "--recipes",
        args.recipe,
        "--recipe-dir",
        str(args.recipe_dir),
        "--params",
        *map(str, args.params),
        "--work",
        str(args.work),
        "--out",
        str(out),
        *budget,
        *rest,
    ]
    subprocess.run(command, check=True, cwd=ROOT)
    (folder,) = [p for p in out.iterdir() if (p / "results.json").is_file()]
    (result,) = json.loads((folder / "results.json").read_text())["results"]
    peak = result["peak_gpu_memory_bytes"]
    print(
        f"\n{args.recipe} recipe: {result['steps']} steps in {result['train_seconds']:.0f} s, "
        f"{result['examples_per_second']:.1f} examples/s, data wait {100 * result['data_wait_fraction']:.1f}% of "
        f"step time, peak GPU memory {'n/a (CPU)' if peak is None else f'{peak / 2**30:.2f} GiB'}",
        flush=True,
    )
    print((folder / "results.md").read_text(), flush=True)

    try:
        paths = check_code_paths(args, cuda)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        compiled = "on" if cuda else "off"
        raise SystemExit(f"code paths: torchrun x1 (DDP), bf16, compile {compiled}: FAILED ({exc})") from None
    print(
        f"code paths: torchrun x1 (DDP), bf16 {'on' if cuda else 'off (CPU)'}, compile {'on' if cuda else 'off'}: "
        f"{paths['steps']} steps, {paths['examples_per_second']:.1f} examples/s",
        flush=True,
    )


if __name__ == "__main__":
    main()
