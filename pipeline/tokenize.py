"""Stage `tokenize`: prepared shards (and more corpora) -> token shards of the exported codec's codes.

    python -m pipeline.tokenize --model models/telucodec.safetensors --shards data/shards --out data/tokens
        --stats reports/tokens/stats.json --skipped reports/tokens/skipped.csv [--shard I | --merge]

Without --shard/--merge it tokenizes every shard in a process pool and then merges (what `dvc repro` runs);
Snakemake runs each --shard I as its own job and then --merge. Finished shards of the same run are kept.
"""

from __future__ import annotations

import argparse
import sys

from codec.runtime.interrupts import exit_cleanly
from codec.tokens.corpus import TokenizeError, merge_tokens, run_tokenize, tokenize_shard
from pipeline.params import load_params


@exit_cleanly("tokenize")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="exported codec (pipeline.export)")
    ap.add_argument("--shards", required=True, help="the prepared shards")
    ap.add_argument("--out", required=True, help="token folder")
    ap.add_argument("--stats", help="per-level code statistics json (merge)")
    ap.add_argument("--skipped", help="skipped segments csv (merge)")
    ap.add_argument("--shard", type=int, help="tokenize only this shard")
    ap.add_argument("--merge", action="store_true", help="only merge tokenized shards")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of a --shard job (0: torch's choice)")
    ap.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="runtime of the encoder: torch (default), or onnx (the export's ONNX graphs, `telucodec export-onnx`)",
    )
    ap.add_argument("--onnx", metavar="DIR", help="folder of the ONNX graphs (default: <export name>.onnx/)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    if args.shard is None and not (args.stats and args.skipped):
        ap.error("--stats and --skipped are required unless --shard is given")
    p = load_params(args.params)
    common = (args.model, args.shards, p.tokenize, p.prepare)
    try:
        if args.shard is not None:
            parts = [
                tokenize_shard(
                    *common, p.sample_rate, args.out, args.shard, args.threads, backend=args.backend, onnx_dir=args.onnx
                )
            ]
            stats = None
        elif args.merge:
            parts, stats = [], merge_tokens(*common, args.out, args.stats, args.skipped)
        else:
            stats, parts = run_tokenize(
                *common, p.sample_rate, args.out, args.stats, args.skipped, backend=args.backend, onnx_dir=args.onnx
            )
    except TokenizeError as exc:
        sys.exit(f"error: tokenize: {exc}")
    for part in parts:
        rows = sum(f["rows"] for f in part["files"])
        speed = part["seconds"] / part["wall_seconds"] if part["wall_seconds"] else 0.0
        print(
            f"shard {part['shard']}: {rows} rows, "
            + ("kept (finished before)" if part.get("kept") else f"{speed:.0f}x real time")
        )
    for name, corpus in (stats or {}).get("corpora", {}).items():
        print(
            f"{name}: {corpus['rows']} rows, {corpus['hours']:.3f} h, {corpus['tokens']} tokens, "
            f"{corpus['entropy_kbps']:.2f} kbit/s entropy, {corpus['skipped']} skipped"
        )


if __name__ == "__main__":
    main()
