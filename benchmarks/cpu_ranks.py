"""One training run on every core of a CPU: threads in one process against one process per core (torchrun, gloo).

    python -m benchmarks.cpu_ranks --shards runs/rb/corpus/shards --init runs/rb/seeds/<id>.safetensors \\
        [--recipe cpu-handover] [--steps 60] [--ranks 2]

The real train stage (``pipeline.train``: data loading, the recipe's loss, the optimizer) runs ``--steps`` steps
of the recipe three ways, one after the other, and prints each one's training examples per second (validation
and checkpoints excluded, as the stage's timings count them) side by side:

- one process, one thread: a pinned run's setting (one job per core);
- one process, ``--ranks`` threads: what a lone ``python -m pipeline.train`` gets;
- ``--ranks`` processes of one thread each (``torchrun --standalone``, gloo all-reduce), each with
  ``batch_size / ranks`` crops, so the global batch, and so the recipe, stays the same.

``--shards`` and ``--init`` are a prepared corpus and its seeded codebooks (``experiments.recipe_budget`` leaves
both under its ``--work`` folder). Run it with nothing else on the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.step_speed import recipe_data
from experiments.stage_runs import ROOT, TRAIN_OUTS, set_dotted, train_args, write_params


def run(name: str, args: list[str], threads: int, ranks: int, folder: Path) -> dict:
    """The train stage ``args`` (writing in ``folder``) as ``ranks`` processes of ``threads`` threads; its
    timings."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    launcher = (
        [sys.executable, "-m"]
        if ranks == 1
        else [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", "-m"]
    )
    log = folder / "log"
    with log.open("w") as f:
        code = subprocess.run([*launcher, *args], cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if code:
        raise SystemExit(f"error: {name} failed (exit {code}); see {log}")
    return json.loads((folder / TRAIN_OUTS["timings"]).read_text())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=Path, required=True, help="a prepared shard folder")
    ap.add_argument("--init", type=Path, required=True, help="its seeded codebooks (seed_codebooks' output)")
    ap.add_argument("--recipe", default="cpu-handover", help="a recipe name, or the path of a recipe YAML file")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--ranks", type=int, default=len(os.sched_getaffinity(0)), help="cores to use (default: all)")
    args = ap.parse_args(argv)
    data = recipe_data(args.recipe)
    set_dotted(data, [f"train.steps={args.steps}", f"train.checkpoint_every={args.steps}"])
    set_dotted(data, [f"train.validate_every={args.steps}", "train.valid_max_examples=16"])
    batch = data["train"]["batch_size"]
    if batch % args.ranks:
        raise SystemExit(f"error: the recipe's batch ({batch}) does not split over {args.ranks} ranks")
    rows = []
    with tempfile.TemporaryDirectory(prefix="cpu-ranks-") as tmp:
        for name, threads, ranks in (
            ("1 process x 1 thread", 1, 1),
            (f"1 process x {args.ranks} threads", args.ranks, 1),
            (f"{args.ranks} processes x 1 thread (torchrun, gloo)", 1, args.ranks),
        ):
            folder = Path(tmp) / f"{threads}t{ranks}r"
            folder.mkdir()
            set_dotted(data, [f"train.batch_size={batch // ranks}"])
            params = folder / "params.yaml"
            write_params(data, params, f"recipe {args.recipe}")
            timings = run(name, train_args(args.shards, args.init, folder, params), threads, ranks, folder)
            rows.append((name, threads * ranks, timings["examples_per_second"], timings["data_wait_fraction"]))
            print(f"{name}: {timings['examples_per_second']:.1f} examples/s", flush=True)
    base = rows[0][2]
    print(f"\n{args.recipe}: {args.steps} steps of a global batch of {batch}, torch train stage\n")
    print("| setting | cores | examples/s | s/step | vs 1 thread | per core vs 1 thread | data wait |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, cores, eps, wait in rows:
        print(
            f"| {name} | {cores} | {eps:.1f} | {batch / eps:.3f} | {eps / base:.2f}x | {eps / base / cores:.2f}x "
            f"| {100 * wait:.1f}% |"
        )


if __name__ == "__main__":
    main()
