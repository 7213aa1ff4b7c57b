"""Stage `seed_codebooks`: the initial codec, its residual codebooks fitted by k-means.

    python -m pipeline.seed_codebooks --shards data/shards --out models/seed.safetensors \
        --metrics reports/seed_codebooks.json
"""

from __future__ import annotations

import argparse
import time

import torch

from codec.config.convert import to_dict
from codec.formats.weights import save_codec_weights
from codec.model.codec import build_codec
from codec.runtime.interrupts import exit_cleanly
from codec.runtime.io import write_json_atomic
from codec.train.seeding import seed_codebooks
from pipeline.params import load_params


@exit_cleanly("seed_codebooks")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", required=True, help="prepared shard folder (reads its train split)")
    parser.add_argument("--out", required=True, help="initial weights + codebooks (safetensors)")
    parser.add_argument("--metrics", required=True, help="per-level k-means inertia and usage (JSON)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)

    torch.manual_seed(params.seed)  # the initial weights are a function of the seed alone
    codec = build_codec(params.model, params.quantizer, params.sample_rate, seed=params.seed)
    start = time.perf_counter()
    try:
        report = seed_codebooks(codec, args.shards, params.seed_codebooks, params.seed)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"error: seed_codebooks: {exc}") from None
    assert codec.config is not None  # build_codec sets it
    save_codec_weights(
        args.out, codec.state_dict(), codec.config, {"stage": "seed_codebooks", "seed": str(params.seed)}
    )
    metrics = {**report.metrics(), "config": to_dict(params.seed_codebooks)}
    write_json_atomic(args.metrics, metrics)
    levels = report.levels
    print(
        f"seed_codebooks: {report.num_frames} frames from {report.num_crops} crops, {len(levels)} levels in "
        f"{time.perf_counter() - start:.1f}s; quantization error {levels[0].quantization_error:.3f} (1 level) -> "
        f"{levels[-1].quantization_error:.3f} ({len(levels)} levels), "
        f"min usage {report.metrics()['min_usage_fraction']:.2f}"
    )


if __name__ == "__main__":
    main()
