"""How long does the evaluate stage spend per utterance, and where?

    python -m benchmarks.evaluate_speed [--model models/codec.safetensors] [--params params.yaml]
                                        [--utterances 4] [--seconds 4]

Scores ``--utterances`` speech-like signals of ``--seconds`` each with the codec at every level
count of ``evaluate.levels`` and Opus at ``evaluate.opus_kbps`` (as the stage does), then prints
the codec's encode/decode real-time factors and the CPU seconds per utterance of each metric,
so ``evaluate.max_utterances`` can be chosen for a time budget. Without ``--model`` it uses an
untrained codec of the ``model``/``quantizer`` sections (same compute as a trained one).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from codec.dsp import metrics as M
from codec.evaluation.opus import OpusUnavailable, find_opus_tools
from codec.evaluation.scoring import Timing, evaluate_set
from codec.evaluation.sets import EvalSet, EvalUtterance
from codec.formats.weights import load_codec
from codec.model.codec import build_codec
from codec.runtime.devices import resolve_device
from pipeline.params import load_params


def speechlike(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(120 + 60 * rng.random() + 20 * np.sin(2 * np.pi * 1.3 * t)) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 10))
    envelope = np.clip(np.sin(2 * np.pi * 3.3 * t), 0.02, None)
    return (0.25 * voiced * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="trained weights (default: an untrained codec of params.yaml)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--utterances", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    torch.manual_seed(params.seed)
    codec = load_codec(args.model) if args.model else build_codec(params.model, params.quantizer, params.sample_rate)
    rate = codec.sample_rate
    device = resolve_device(params.evaluate.device)
    codec = codec.to(device).eval()
    try:
        tools = find_opus_tools()
    except OpusUnavailable as exc:
        tools = None
        print(f"note: {exc}; Opus not timed")
    data = EvalSet(
        "bench",
        [EvalUtterance(f"u{i}", None, speechlike(args.seconds, rate, i)) for i in range(args.utterances)],
        args.utterances,
    )
    levels = params.evaluate.levels_for(codec.num_levels)
    timing = Timing()
    start = time.perf_counter()
    with torch.nn.utils.parametrize.cached():
        evaluate_set(codec, data, levels, params.evaluate.opus_kbps, tools, device, timing)
    wall = time.perf_counter() - start
    systems = len(levels) + (len(params.evaluate.opus_kbps) if tools else 0)
    encode_rtf, decode_rtf = timing.rtf()
    print(
        f"device {device}, threads {torch.get_num_threads()}, {args.utterances} x {args.seconds:g} s, "
        f"{len(levels)} level counts + {systems - len(levels)} Opus bitrates"
    )
    print(f"codec real-time factor (all {codec.num_levels} levels): encode x{encode_rtf:.1f}, decode x{decode_rtf:.1f}")
    print(
        f"stage wall time per utterance: {wall / args.utterances:.2f} s "
        f"({wall / (args.utterances * args.seconds):.3f} s per audio second)"
    )

    x = data.utterances[0].audio
    ys = [x + 0.01 * np.random.default_rng(s).standard_normal(x.size).astype(np.float32) for s in range(systems)]
    xt, yt = torch.from_numpy(x).expand(systems, -1), torch.from_numpy(np.stack(ys))
    costs = {
        "snr + si_snr + segsnr": lambda: (M.snr(xt, yt), M.si_snr(xt, yt), M.segmental_snr(xt, yt, rate)),
        "mel_distance": lambda: M.multiscale_mel_distance(xt, yt, rate),
        "lsd_db": lambda: M.log_spectral_distance(xt, yt),
        "mrstft_distance": lambda: M.multi_resolution_stft_distance(xt, yt),
        "stoi": lambda: [M.stoi(x, y, rate) for y in ys],
        "pesq_wb": lambda: [M.pesq_wb(x, y, rate) for y in ys],
    }
    print(f"metric cost for one {args.seconds:g} s utterance and {systems} systems:")
    for name, fn in costs.items():
        start = time.perf_counter()
        fn()
        print(f"  {name:22s} {time.perf_counter() - start:7.3f} s")


if __name__ == "__main__":
    main()
