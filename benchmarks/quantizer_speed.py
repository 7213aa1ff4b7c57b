"""Train-step speed of our residual VQ against vector_quantize_pytorch.ResidualVQ on CPU.

One step = forward + backward + EMA update (+ dead-code check) on a ``[B, D, T]`` latent, with
the same settings for both: EMA decay 0.99, commitment weight 1, dead-code replacement on, no
k-means init, no quantizer dropout. The two run interleaved (so machine noise hits both alike)
with the same thread count; after a warm-up the median time of ``--steps`` steps is printed.

    python -m benchmarks.quantizer_speed [--steps 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from codec.config.quantizer import QuantizerConfig
from codec.quantization.core_vq import ResidualVectorQuantizer


def _ours(args: argparse.Namespace):
    config = QuantizerConfig(
        num_levels=args.levels,
        codebook_size=args.codebook_size,
        decay=0.99,
        commitment_weight=1.0,
        dead_code_threshold=0.1,
        dropout=False,
    )
    model = ResidualVectorQuantizer(args.dim, config, frame_rate=50.0).train()
    latents = torch.randn(args.batch, args.dim, args.frames, requires_grad=True)

    def step() -> None:
        out = model(latents)
        (out.quantized.square().mean() + out.commitment_loss).backward()

    return step


def _theirs(args: argparse.Namespace):
    from vector_quantize_pytorch import ResidualVQ

    # Same relative dead-code rule as ours at uniform use: 0.1 x (frames per batch / K) per entry.
    threshold = 0.1 * args.batch * args.frames / args.codebook_size
    model = ResidualVQ(
        dim=args.dim,
        num_quantizers=args.levels,
        codebook_size=args.codebook_size,
        decay=0.99,
        kmeans_init=False,
        threshold_ema_dead_code=threshold,
        commitment_weight=1.0,
    ).train()
    latents = torch.randn(args.batch, args.frames, args.dim, requires_grad=True)

    def step() -> None:
        quantized, _, losses = model(latents)
        (quantized.square().mean() + losses.sum()).backward()

    return step


def _time(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--levels", type=int, default=8)
    parser.add_argument("--codebook-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    steps = {"ours": _ours(args), "vector_quantize_pytorch": _theirs(args)}
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            times[name].append(_time(step))

    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(
        f"train step B={args.batch} T={args.frames} D={args.dim} {args.levels} levels x {args.codebook_size} "
        f"entries, {args.threads} threads, median of {args.steps} steps after {args.warmup} warm-up"
    )
    for name, ms in medians.items():
        print(f"  {name:<24} {ms:8.1f} ms/step")
    ratio = medians["vector_quantize_pytorch"] / medians["ours"]
    print(f"  speed-up (theirs / ours) {ratio:8.2f}x  (target >= 4x)")


if __name__ == "__main__":
    main()
