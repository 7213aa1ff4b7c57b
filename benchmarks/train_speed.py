"""Is the data loader ever the bottleneck of training?

    python -m benchmarks.train_speed [--shards data/shards] [--params params.yaml] [--steps 20]

Prints the examples/s the DataLoader alone delivers (same workers, crops and batch size as
training) and the examples/s of full training steps on CPU, and their ratio (target >= 5x).
With CUDA it also trains on the GPU and prints examples/s and the fraction of the step time
spent waiting for a batch (target < 5%). Without ``--shards`` it writes a small synthetic
shard set (~10 min of tones) to a temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
import time
from pathlib import Path

import torch

from codec.data.crops import CropBatchSampler, CropDataset, build_loader, index_split
from codec.data.tone_shards import write_synthetic_shards
from codec.formats.weights import save_codec_weights
from codec.model.codec import build_codec
from codec.train.loop import train
from pipeline.params import load_params


def loader_rate(shards: Path, cfg, sample_rate: int, seed: int, batches: int) -> float:
    """Examples/s of the training DataLoader alone (after its first batch: worker start-up excluded)."""
    index = index_split(shards, "train", sample_rate)
    segment = round(cfg.segment_seconds * sample_rate)
    sampler = CropBatchSampler(
        index, segment, cfg.batch_size, seed=seed, short=cfg.short_utterances, locality_groups=cfg.cached_row_groups
    )
    loader = build_loader(
        CropDataset(index, segment, cfg.cached_row_groups),
        sampler,
        num_workers=cfg.num_workers,
        prefetch_batches=cfg.prefetch_batches,
        pin_memory=False,
        seed=seed,
    )
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    for _ in itertools.islice(it, batches):
        pass
    return batches * cfg.batch_size / (time.perf_counter() - start)


def train_rate(shards: Path, init: Path, params, steps: int, device: str) -> tuple[float, float]:
    """(examples/s, data-wait fraction) of ``steps`` training steps on ``device`` (the trainer's own timing:
    batch wait + step, first step, validation and checkpoints excluded)."""
    cfg = dataclasses.replace(params.train, steps=steps, validate_every=10**9, checkpoint_every=10**9, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            cfg, params.loss, shards=shards, init=init, checkpoints=Path(tmp), seed=params.seed, progress=False
        )
    return result.examples_per_second, result.data_wait_fraction


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=Path, help="prepared shard folder (default: synthesize one)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed per device")
    parser.add_argument("--batches", type=int, default=200, help="loader batches timed")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = args.shards or write_synthetic_shards(
            tmp / "shards",
            sample_rate=params.sample_rate,
            train_rows=300,
            valid_rows=20,
            min_seconds=0.5,
            max_seconds=3.5,
            row_group_rows=64,
        )
        torch.manual_seed(params.seed)
        codec = build_codec(params.model, params.quantizer, params.sample_rate, seed=params.seed)
        init = save_codec_weights(tmp / "init.safetensors", codec.state_dict(), codec.config)
        cfg = params.train
        print(
            f"batch {cfg.batch_size} x {cfg.segment_seconds} s, {cfg.num_workers} loader worker(s), "
            f"{torch.get_num_threads()} torch threads, shards: {args.shards or 'synthetic'}"
        )
        loader = loader_rate(shards, cfg, params.sample_rate, params.seed, args.batches)
        print(f"loader alone:        {loader:10.1f} examples/s")
        step, wait = train_rate(shards, init, params, args.steps, "cpu")
        print(
            f"training steps (CPU): {step:9.1f} examples/s ({cfg.batch_size / step:.3f} s/step), "
            f"data wait {100 * wait:.1f}% of step time"
        )
        print(f"loader / training:   {loader / step:10.1f}x (target >= 5x)")
        if torch.cuda.is_available():
            step, wait = train_rate(shards, init, params, args.steps * 5, "cuda")
            print(
                f"training steps (CUDA): {step:8.1f} examples/s, data wait {100 * wait:.1f}% of step time (target < 5%)"
            )


if __name__ == "__main__":
    main()
