"""Speed of `telucodec encode` and `telucodec decode` on one CPU core (target: >= 20x real time each).

The default codec (params.yaml's model and quantizer sections) with random weights and codebooks
seeded from its own latents, exported to a temporary folder; a speech-like test file of
``--seconds`` seconds. Each command runs in process through ``codec.cli.main`` (file to file:
audio decode, resampling, model, bitstream, atomic write), with ``torch.set_num_threads(1)``.
Interpreter start-up and the torch import are not counted. Prints the best of ``--repeats``
runs as wall time and CPU time (this machine is shared: CPU time is the single core's work).

    python benchmarks/cli_speed.py [--seconds 60] [--repeats 3] [--input-rate 44100 --channels 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from codec.bitstream import read_bitstream
from codec.cli import main as cli
from codec.export import export_codec
from codec.model import build_codec
from pipeline.params import load_params


def _speechlike(seconds: float, rate: int, channels: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(140 * (1 + 0.1 * np.sin(2 * np.pi * 1.3 * t))) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    noise = 0.01 * np.random.default_rng(0).standard_normal((t.size, channels))
    return (0.25 * voiced[:, None] + noise).astype(np.float32)


def _timed(argv: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one in-process CLI run; its output is swallowed."""
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli(argv)
    if code != 0:
        raise SystemExit(f"telucodec {' '.join(argv)} exited with {code}")
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--input-rate", type=int, default=16000)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    torch.set_num_threads(1)
    torch.manual_seed(params.seed)

    codec = build_codec(params.model, params.quantizer, params.sample_rate)
    codec.train()
    codec(0.3 * torch.randn(4, 1, 4 * params.sample_rate))  # seeds the codebooks: codes vary as when trained
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = str(tmp / "telucodec.safetensors")
        export_codec(codec.eval(), model, params.export)
        wav, tcq, out = tmp / "in.wav", tmp / "x.tcq", tmp / "out.wav"
        sf.write(wav, _speechlike(args.seconds, args.input_rate, args.channels), args.input_rate, subtype="PCM_16")
        common = ["--model", model, "--threads", "1"]
        runs = {
            "encode": ["encode", str(wav), str(tcq), *common],
            "decode": ["decode", str(tcq), str(out), *common],
        }
        print(f"cli_speed: default codec ({sum(p.numel() for p in codec.parameters()) / 1e6:.2f} M parameters, "
              f"{codec.num_levels} levels x {params.quantizer.codebook_size}), {args.seconds:g} s input at "
              f"{args.input_rate} Hz x {args.channels} ch, 1 thread, best of {args.repeats}")
        for name, argv in runs.items():
            times = [_timed(argv) for _ in range(args.repeats)]
            wall, cpu = min(t[0] for t in times), min(t[1] for t in times)
            print(f"  {name}: {wall:.3f} s wall ({args.seconds / wall:.0f}x real time), "
                  f"{cpu:.3f} s CPU ({args.seconds / cpu:.0f}x real time)")
        h = read_bitstream(tcq).header
        print(f"  bitstream: {h.file_bytes} bytes, {h.nominal_kbps:.2f} kbit/s nominal, "
              f"{h.payload_kbps:.2f} kbit/s achieved (entropy-coded, random weights)")


if __name__ == "__main__":
    main()
