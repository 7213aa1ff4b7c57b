"""Corpora larger than memory: loader speed and peak memory per worker, whole split in memory against a
bounded window of row groups, on a generated corpus of 20 hours (default) in many shards.

    python -m benchmarks.loader_memory [--hours 20] [--window 2] [--batches 20000] [--keep DIR]

1. Writes ``--hours`` of speech-like 16 kHz WAV files (6-14 s each; benchmarks/prepare_speed.py's corpus) and
   runs ``prepare`` on them (16 shards, every core) in a child process: its wall time and peak RSS (the main
   process and the largest worker), so the stage is shown bounded too.
2. For each mode, a child process builds the train split's loader exactly as training does
   (``CropDataset`` + ``CropBatchSampler`` + ``build_loader``, one DataLoader worker, batch 8 x 0.5 s crops as
   params.yaml) and draws ``--batches`` batches: examples/s and the worker's peak RSS.
   - ``in-memory`` (``train.cached_row_groups: 0``): each worker keeps every row group it has decoded: the
     whole split, sooner or later;
   - ``window`` (``train.cached_row_groups: N``): the sampler orders each epoch's crops by windows of N row
     groups in random order (still a pure function of seed, epoch and rank) and a worker keeps N decoded.
Prints a table side by side, and the ratio of each mode's examples/s to what a training step consumes
(reports/timings/train.json of the last `dvc repro`, else 30 examples/s, this CPU's).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.prepare_speed import make_corpus

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000

PREPARE_CHILD = """
import json, resource, sys, time
from codec.config.prepare import PrepareConfig, SplitFractions
from codec.data.prepare import run_prepare
corpus, out = sys.argv[1], sys.argv[2]
cfg = PrepareConfig(corpus=corpus, format="folder", num_shards=16, split=SplitFractions(valid=0.02, test=0.02))
t0 = time.perf_counter()
stats, _ = run_prepare(cfg, 16000, out + "/shards", out + "/stats.json", out + "/rejected.csv")
print(json.dumps({"seconds": time.perf_counter() - t0, "hours": stats.splits["train"]["hours"],
                  "self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""

LOADER_CHILD = """
import json, resource, sys, time
import torch
from codec.data.crops import CropBatchSampler, CropDataset, build_loader, index_split

shards, window, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
index = index_split(shards, "train", 16000)
segment = 8000  # 0.5 s, params.yaml's train.segment_seconds
sampler = CropBatchSampler(index, segment, 8, seed=0, locality_groups=window)
loader = build_loader(CropDataset(index, segment, window), sampler, num_workers=1, prefetch_batches=4,
                      pin_memory=False, seed=0)
it = iter(loader)
next(it)  # the worker's start-up is not the loader's speed
t0 = time.perf_counter()
for _ in range(batches):
    x = next(it)
seconds = time.perf_counter() - t0
groups = len(index.file_of)
del it, loader  # shuts the worker down: its peak RSS is then the children's
print(json.dumps({"examples_per_second": batches * 8 / seconds, "row_groups": groups,
                  "rows": index.num_rows, "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"error: loader_memory: child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=20.0)
    ap.add_argument("--window", type=int, default=2, help="row groups a worker keeps in the bounded mode")
    ap.add_argument(
        "--batches",
        type=int,
        default=20000,
        help="batches drawn per mode (default: more than an epoch, so both decode every row group)",
    )
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (a second run reuses the corpus)")
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="telucodec-loader-"))
    corpus, out = work / "corpus", work / "prepared"
    try:
        if not (corpus / ".complete").is_file():
            t0 = time.perf_counter()
            seconds = make_corpus(corpus, RATE, args.hours, 0, seconds_range=(6.0, 14.0), speakers=200)
            (corpus / ".complete").write_text(str(seconds))
            print(f"corpus: {seconds / 3600:.1f} h of 16 kHz WAV written in {time.perf_counter() - t0:.0f} s")
        if not (out / "shards" / "manifest.json").is_file():
            prep = child(PREPARE_CHILD, str(corpus), str(out))
            print(
                f"prepare: {prep['hours']:.1f} h of train split in {prep['seconds']:.0f} s "
                f"({args.hours * 3600 / prep['seconds']:.0f}x real time); peak RSS {prep['self_mb']:.0f} MB "
                f"(main process), {prep['workers_mb']:.0f} MB (largest worker)"
            )
        rows = [
            ("in-memory (cached_row_groups: 0)", child(LOADER_CHILD, str(out / "shards"), "0", str(args.batches))),
            (
                f"window (cached_row_groups: {args.window})",
                child(LOADER_CHILD, str(out / "shards"), str(args.window), str(args.batches)),
            ),
        ]
        timings = ROOT / "reports" / "timings" / "train.json"
        consumed = json.loads(timings.read_text())["examples_per_second"] if timings.is_file() else 30.0
        data_mb = sum(p.stat().st_size for p in (out / "shards" / "train").glob("*.parquet")) / 2**20
        print(
            f"\ntrain split: {rows[0][1]['rows']} rows in {rows[0][1]['row_groups']} row groups, "
            f"{data_mb:.0f} MB of Parquet; a training step consumes {consumed:.1f} examples/s here"
        )
        print(f"{'mode':<36} {'examples/s':>11} {'x training':>11} {'worker peak RSS':>16}")
        for name, r in rows:
            print(
                f"{name:<36} {r['examples_per_second']:>11.0f} {r['examples_per_second'] / consumed:>10.0f}x "
                f"{r['worker_mb']:>13.0f} MB"
            )
        ratio = rows[0][1]["worker_mb"] / rows[1][1]["worker_mb"]
        print(
            f"the window mode holds {ratio:.1f}x less per worker, at "
            f"{rows[1][1]['examples_per_second'] / rows[0][1]['examples_per_second']:.2f}x the in-memory speed"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
