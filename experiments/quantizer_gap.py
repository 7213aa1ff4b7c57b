"""Where a codec's quality goes: the autoencoder's own (latents decoded unquantized) against its quantized rates.

    python -m experiments.quantizer_gap [LABEL=]MODEL ... [--shards data/shards] [--levels 12 6 3]
        [--segments 54] [--out docs/recipes/quantizer-gap/results.md]

Each model (a weights file or an export: ``codec.formats.export.load_any_codec``) codes the test split's
segments four ways: the encoder's latents straight into the decoder (no quantizer: what the encoder and decoder
alone can do, the ceiling any quantizer at any bitrate stays under) and through 12, 6 and 3 levels. The gap
between the ceiling and a rate says what that rate loses to quantization; the ceiling itself what more bits
could never buy. PESQ-WB, STOI (``codec.dsp.metrics``) and the multi-scale mel distance, means over the
segments, as ``evaluate`` computes them (its rows at 12 / 6 / 3 levels match these).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from codec.data.shards import iter_segments, split_files
from codec.dsp.metrics import multiscale_mel_distance, pesq_wb, stoi
from codec.formats.export import load_any_codec
from codec.model.codec import Codec
from codec.runtime.io import write_text_atomic

UNQUANTIZED = "unquantized"


def rate_label(codec: Codec, n_q: int) -> str:
    return f"{n_q} level{'' if n_q == 1 else 's'} ({codec.bitrate_kbps(n_q):g} kbps)"


@torch.no_grad()
def decodings(codec: Codec, x: torch.Tensor, levels: list[int]) -> dict[str, torch.Tensor]:
    """``x [1, 1, T]`` decoded from its unquantized latents and at each level count: ``{name: [T]}``."""
    length = x.shape[-1]
    latents = codec.encoder(F.pad(x, (0, (-length) % codec.hop_length)))
    out = {UNQUANTIZED: codec.decoder(latents)}
    for n_q in levels:
        out[rate_label(codec, n_q)] = codec.decoder(codec.quantizer(latents, n_q).quantized)
    return {name: y[0, 0, :length] for name, y in out.items()}


def scores(codec: Codec, segments: list[np.ndarray], levels: list[int]) -> dict[str, tuple[float, float, float]]:
    """Mean PESQ-WB, STOI and mel distance over ``segments`` (float32 waveforms) for each decoding."""
    rate = codec.sample_rate
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for audio in segments:
        x = torch.from_numpy(audio)[None, None]
        for name, y in decodings(codec, x, levels).items():
            est = y.numpy()
            mel = float(multiscale_mel_distance(x[0, 0], y, rate))
            rows.setdefault(name, []).append((pesq_wb(audio, est, rate).value, stoi(audio, est, rate).value, mel))
    means = {name: np.nanmean(np.array(values, dtype=np.float64), axis=0) for name, values in rows.items()}
    return {name: (float(m[0]), float(m[1]), float(m[2])) for name, m in means.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="weights files or exports, each optionally named: LABEL=PATH")
    ap.add_argument("--shards", type=Path, default=Path("data/shards"), help="prepared shards with a test split")
    ap.add_argument("--levels", type=int, nargs="+", default=[12, 6, 3])
    ap.add_argument("--segments", type=int, default=54, help="the first N test segments (54: all of chai-bisket-te's)")
    ap.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = ap.parse_args(argv)
    rows = iter_segments(split_files(args.shards, "test"))
    segments = [np.asarray(row.audio).astype(np.float32) / 32768 for _, row in zip(range(args.segments), rows)]
    if not segments:
        raise SystemExit(f"error: quantizer_gap: no test segments in {args.shards}")
    lines = [
        f"{len(segments)} test segments of {args.shards}; PESQ-WB / STOI / mel distance",
        "",
        "| model | decoding | PESQ-WB | STOI | mel distance |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for model in args.models:
        label, _, path = model.rpartition("=")
        codec = load_any_codec(path).eval()
        levels = [n for n in args.levels if n <= codec.num_levels]
        for name, (pesq, stoi_value, mel) in scores(codec, segments, levels).items():
            cells = [f"{v:.{d}f}" if math.isfinite(v) else "n/a" for v, d in ((pesq, 2), (stoi_value, 3), (mel, 3))]
            lines.append(f"| {label or path} | {name} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    if args.out is not None:
        write_text_atomic(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
