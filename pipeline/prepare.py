"""Stage `prepare`: corpus -> speaker-disjoint Parquet shards + manifest, stats and rejects.

    python -m pipeline.prepare --corpus-dir DIR --out data/shards --stats S.json --rejected R.csv
        [--format F] [--shard I --num-shards N | --merge]

Without --shard/--merge it prepares every shard and then merges (what `dvc repro` runs);
Snakemake runs each --shard I as its own job and then --merge.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from codec.data.corpora.base import CorpusError
from codec.data.prepare import PrepareError, merge_shards, prepare_shard, run_prepare
from codec.runtime.interrupts import exit_cleanly
from pipeline.params import load_params


@exit_cleanly("prepare")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus-dir", help="corpus root (default: params prepare.corpus)")
    ap.add_argument("--format", help="reader format (default: params prepare.format)")
    ap.add_argument("--out", required=True, help="shard folder")
    ap.add_argument("--stats", help="stats json (merge)")
    ap.add_argument("--rejected", help="rejected csv (merge)")
    ap.add_argument("--shard", type=int, help="prepare only this shard")
    ap.add_argument("--num-shards", type=int, help="default: params prepare.num_shards")
    ap.add_argument("--merge", action="store_true", help="only merge prepared shards")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    if args.shard is None and not (args.stats and args.rejected):
        ap.error("--stats and --rejected are required unless --shard is given")
    params = load_params(args.params)
    overrides = {"corpus": args.corpus_dir, "format": args.format, "num_shards": args.num_shards}
    try:
        cfg = replace(params.prepare, **{k: v for k, v in overrides.items() if v is not None})
        stats, summaries = None, []
        if args.merge:
            stats = merge_shards(cfg, params.sample_rate, args.out, args.stats, args.rejected)
        elif args.shard is not None:
            summaries = [prepare_shard(cfg, params.sample_rate, args.out, args.shard)]
        else:
            stats, summaries = run_prepare(cfg, params.sample_rate, args.out, args.stats, args.rejected)
    except (CorpusError, PrepareError, ValueError) as exc:
        sys.exit(f"error: prepare: {exc}")
    if summaries:
        seconds, wall = sum(s.source_seconds for s in summaries), sum(s.wall_seconds for s in summaries)
        print(
            f"shards {[s.shard for s in summaries]}: {sum(s.source_files for s in summaries)} files, "
            f"{seconds / 3600:.3f} h decoded in {wall:.1f} s ({seconds / max(wall, 1e-9):.0f}x real time)"
        )
    for name, split in (stats.splits if stats else {}).items():
        print(f"{name}: {split['utterances']} segments, {split['hours']:.3f} h, {split['speakers']} speakers")
    if stats:
        print(f"rejected: {stats.rejected} {stats.rejected_by_reason}")


if __name__ == "__main__":
    main()
