"""How fast does a corpus become codes? The tokenize stage beside `telucodec encode` on a folder, side by side.

    python -m benchmarks.tokenize_speed --shards data/shards --models models/telucodec.safetensors [more.safetensors]
        [--params params.yaml] [--work DIR] [--skip-snakemake]

For each model, on the same audio (every segment of the prepared ``--shards``):

1. the tokenize stage as ``dvc repro`` runs it (``python -m pipeline.tokenize``: one process per core, a shard
   each): wall time, tokens/s and x real time (target >= 50x on 2 cores for the default model);
2. ``telucodec encode`` on a folder of the same segments as WAV files (one process, one file per core at a
   time, model loaded once), writing ``.tcq`` files;
3. (first model) the shard-parallel Snakemake run (``snakemake --cores N --allowed-rules tokenize_shard
   tokenize`` in a clone with the shards and model in place) at 1 and 2 cores, and the ratio;
4. (first model) the reader: rows/s and tokens/s of ``codec.formats.tokens.TokenDataset`` with every level and
   with 2 levels, beside the same codes stored as one nested ``list<list<int16>>`` column.

Process start-up and model loading are included everywhere (they are part of what a user waits for). Run it
when nothing else uses the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
import yaml

from codec.data.shards import iter_segments, read_manifest, split_files
from codec.formats.tokens import TokenDataset
from codec.runtime.cpus import available_cpus
from workflow.lib.dvc_stages import stage_command

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path = ROOT, threads: str | None = None) -> float:
    """Wall seconds of ``cmd`` (fails loudly)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start


def write_wavs(shards: Path, folder: Path) -> tuple[float, int]:
    """Every segment of the shards as a 16-bit WAV; returns (seconds of audio, files)."""
    seconds, files = 0.0, 0
    for split in read_manifest(shards)["splits"]:
        for seg in iter_segments(split_files(shards, split)):
            path = folder / split / f"{seg.id.replace('/', '_')}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, seg.audio, seg.sample_rate, subtype="PCM_16")
            seconds += seg.num_samples / seg.sample_rate
            files += 1
    return seconds, files


def tokens_of(out: Path) -> tuple[int, int]:
    """(frames, tokens) the tokenize stage wrote (its manifest)."""
    manifest = json.loads((out / "manifest.json").read_text())
    frames = sum(s["frames"] for c in manifest["corpora"].values() for s in c["splits"].values())
    return frames, frames * manifest["levels"]


def tokenize_stage(model: Path, shards: Path, params: Path, out: Path) -> float:
    """The tokenize stage's command as dvc.yaml writes it, with these paths."""
    shutil.rmtree(out, ignore_errors=True)
    paths = {"model": model, "shards": shards, "out": out, "stats": out / "stats.json", "skipped": out / "skipped.csv"}
    return run([sys.executable, "-m", *stage_command(ROOT / "dvc.yaml", "tokenize", **paths, params=params)])


def cli_batch(model: Path, wavs: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    return run([str(Path(sys.executable).parent / "telucodec"), "encode", str(wavs), str(out), "--model", str(model)])


def snakemake_runs(model: Path, shards: Path, params: Path, work: Path) -> dict[int, float]:
    """Wall seconds of the tokenize jobs under Snakemake at 1 and 2 cores, in a clone of HEAD with the shards
    and the model in place (no other rule may run)."""
    clone = work / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    shutil.copytree(shards, clone / "data" / "shards")
    (clone / "models").mkdir(exist_ok=True)
    shutil.copy(model, clone / "models" / "telucodec.safetensors")
    shutil.copy(params, clone / "params.yaml")
    seconds = {}
    for cores in (1, 2):
        shutil.rmtree(clone / "data" / "tokens", ignore_errors=True)
        seconds[cores] = run(
            [
                "snakemake",
                "data/tokens/manifest.json",
                "--cores",
                str(cores),
                "--allowed-rules",
                "tokenize_shard",
                "tokenize",
                "--quiet",
                "all",
            ],
            cwd=clone,
        )
    return seconds


def nested_copy(files: list[Path], out: Path) -> list[Path]:
    """The same codes as one ``list<list<int16>>`` column ``codes`` (levels of frames), row groups kept."""
    copies = []
    out.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(files):
        if pq.ParquetFile(path).metadata.num_row_groups == 0:
            continue
        table = pq.read_table(path)
        levels = [n for n in table.column_names if n.startswith("codes_")]
        per_row = [[table.column(n)[i].values for n in levels] for i in range(table.num_rows)]
        nested = pa.array([[a.to_numpy() for a in row] for row in per_row], pa.list_(pa.list_(pa.int16())))
        target = out / f"{index:03d}-{path.name}"
        pq.write_table(
            table.drop_columns(levels).append_column("codes", nested),
            target,
            row_group_size=pq.ParquetFile(path).metadata.row_group(0).num_rows,
            compression="zstd",
        )
        copies.append(target)
    return copies


def read_nested(files: list[Path], levels: int | None) -> tuple[int, int]:
    rows = tokens = 0
    for path in files:
        f = pq.ParquetFile(path)
        for g in range(f.num_row_groups):
            column = f.read_row_group(g, columns=["id", "codes"]).column("codes").combine_chunks()
            for row in column.to_numpy(zero_copy_only=False):
                codes = np.stack(row[:levels] if levels else row).astype(np.int64)
                rows, tokens = rows + 1, tokens + codes.size
    return rows, tokens


def read_speed(files: list[Path], levels: int | None, nested: bool = False) -> tuple[float, float]:
    start = time.perf_counter()
    if nested:
        rows, tokens = read_nested(files, levels)
    else:
        rows = tokens = 0
        for row in TokenDataset(files, levels, shuffle=False):
            rows, tokens = rows + 1, tokens + row["codes"].numel()
    seconds = time.perf_counter() - start
    return rows / seconds, tokens / seconds


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=Path, default=ROOT / "data" / "shards")
    ap.add_argument("--models", type=Path, nargs="+", default=[ROOT / "models" / "telucodec.safetensors"])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    ap.add_argument("--skip-snakemake", action="store_true", help="leave out the Snakemake scaling runs")
    args = ap.parse_args(argv)
    for path in [args.shards / "manifest.json", *args.models]:
        if not path.is_file():
            raise SystemExit(f"error: {path}: not found (run `make run` first, or pass --shards / --models)")
    work = args.work or Path(tempfile.mkdtemp(prefix="telucodec-tokenize-"))
    work.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load(args.params.read_text(encoding="utf-8"))
    params["prepare"]["num_shards"] = read_manifest(args.shards).get("num_shards", params["prepare"]["num_shards"])
    params["tokenize"]["workers"] = 0
    (work / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    seconds, files = write_wavs(args.shards, work / "wavs")
    print(f"{files} segments, {seconds / 60:.1f} min of audio, {available_cpus()} cores\n", flush=True)
    print("| model | system | wall s | tokens/s | x real time |\n| --- | --- | ---: | ---: | ---: |")
    for model in args.models:
        stage = tokenize_stage(model, args.shards, work / "params.yaml", work / "tokens")
        frames, tokens = tokens_of(work / "tokens")
        batch = cli_batch(model, work / "wavs", work / "tcq")
        for name, wall in (("tokenize stage", stage), ("telucodec encode (folder)", batch)):
            print(f"| {model.name} | {name} | {wall:.1f} | {tokens / wall:,.0f} | {seconds / wall:.1f} |", flush=True)
        print(f"| {model.name} | ratio stage / CLI | | {batch / stage:.2f}x | |", flush=True)
    token_files = sorted((work / "tokens").glob("*/*/part-*.parquet"))
    if not args.skip_snakemake:
        runs = snakemake_runs(args.models[0], args.shards, work / "params.yaml", work)
        print(
            f"\nSnakemake, {len(token_files) // 3} shard jobs + merge ({args.models[0].name}): "
            f"{runs[1]:.1f} s at --cores 1, {runs[2]:.1f} s at --cores 2: {runs[1] / runs[2]:.2f}x",
            flush=True,
        )
    nested = nested_copy(token_files, work / "nested")
    print("\n| reader | levels | rows/s | tokens/s |\n| --- | ---: | ---: | ---: |")
    for label, levels, is_nested, paths in (
        ("TokenDataset, a column per level", None, False, token_files),
        ("TokenDataset, a column per level", 2, False, token_files),
        ("one nested list<list<int16>> column", None, True, nested),
        ("one nested list<list<int16>> column", 2, True, nested),
    ):
        rows_s, tokens_s = read_speed(paths, levels, is_nested)
        print(f"| {label} | {levels or 'all'} | {rows_s:,.0f} | {tokens_s:,.0f} |", flush=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
