"""Streaming latency and speed of causal models on one CPU core (target: >= 5x real time at 80 ms chunks).

    python -m benchmarks.streaming_latency [--models a.safetensors ...] [--seconds 20] [--chunks-ms 20 40 80]

For each causal export (default: the causal recipes' architectures with random weights and codebooks seeded
from their own latents, built from params.yaml + workflow/recipes/cpu-causal*.yaml): the algorithmic latency
read from the architecture (a code frame waits for its hop of audio; the causal Vocos head for its look-ahead
frames), then ``StreamingEncoder`` and ``StreamingDecoder`` fed ``--seconds`` of speech-like audio in chunks
of 20 / 40 / 80 ms, with ``torch.set_num_threads(1)``: the p50 and p99 compute time per chunk, the real-time
factor (chunk duration over compute time, median) and the whole run's. Weights do not change the compute, so
random ones measure what a trained model costs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from codec.formats.export import load_export
from codec.model.codec import Codec, build_codec
from codec.model.streaming import StreamingDecoder, StreamingEncoder, algorithmic_latency, is_causal
from pipeline.params import merge_params, params_from_dict

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["cpu-causal", "cpu-causal-la0", "cpu-causal-seanet"]


def recipe_codec(name: str) -> Codec:
    base = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    recipe = yaml.safe_load((ROOT / "workflow" / "recipes" / f"{name}.yaml").read_text(encoding="utf-8"))
    params = params_from_dict(merge_params(base, recipe))
    torch.manual_seed(0)
    codec = build_codec(params.model, params.quantizer, params.sample_rate)
    codec.train()
    codec(0.3 * torch.randn(4, 1, params.sample_rate))  # seeds the codebooks
    return codec.eval()


def speechlike(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(140 * (1 + 0.1 * np.sin(2 * np.pi * 1.3 * t))) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    return (0.25 * voiced + 0.01 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)


def chunk_times(codec: Codec, audio: np.ndarray, chunk: int) -> tuple[list[float], list[float]]:
    """Per chunk, the seconds the encoder took on it and the decoder on its codes."""
    enc, dec = StreamingEncoder(codec), StreamingDecoder(codec)
    enc_times, dec_times = [], []
    for start in range(0, audio.shape[0] - chunk + 1, chunk):
        piece = torch.from_numpy(audio[start : start + chunk])
        t0 = time.perf_counter()
        codes = enc.encode(piece)
        t1 = time.perf_counter()
        dec.decode(codes)
        t2 = time.perf_counter()
        enc_times.append(t1 - t0)
        dec_times.append(t2 - t1)
    return enc_times, dec_times


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, nargs="*", help="causal exports (default: the causal recipes' models)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--chunks-ms", type=float, nargs="+", default=[20.0, 40.0, 80.0])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    models = (
        [(p.name, load_export(p).codec) for p in args.models]
        if args.models
        else [(name, recipe_codec(name)) for name in RECIPES]
    )
    print("| model | algorithmic latency | chunk | side | p50 ms | p99 ms | x real time (p50) | x real time (run) |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, codec in models:
        if not is_causal(codec):
            raise SystemExit(f"error: {name}: not causal")
        latency = algorithmic_latency(codec)
        audio = speechlike(args.seconds, codec.sample_rate)
        chunk_times(codec, audio[: codec.sample_rate], codec.hop_length * 4)  # warm-up
        label = f"{latency.total_ms:.0f} ms ({latency.frame_ms:.0f} frame + {latency.lookahead_ms:.0f} look-ahead)"
        for ms in args.chunks_ms:
            chunk = round(ms / 1000 * codec.sample_rate)
            if chunk % codec.hop_length:
                raise SystemExit(f"error: {ms:g} ms is no multiple of the {latency.frame_ms:g} ms frame")
            for side, times in zip(("encode", "decode"), chunk_times(codec, audio, chunk)):
                t = np.asarray(times) * 1000
                p50, p99 = np.percentile(t, 50), np.percentile(t, 99)
                run_rtf = len(t) * ms / t.sum()
                print(
                    f"| {name} | {label} | {ms:g} ms | {side} | {p50:.2f} | {p99:.2f} | {ms / p50:.1f} | "
                    f"{run_rtf:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
