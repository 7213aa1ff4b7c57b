"""Speed of `telucodec encode` and `telucodec decode` on one CPU core (target: >= 20x real time each).

The default codec (params.yaml's model and quantizer sections) with random weights and codebooks
seeded from its own latents, exported to a temporary folder; a speech-like test file of
``--seconds`` seconds. Each command runs in process through ``codec.cli.main`` (file to file:
audio decode, resampling, model, bitstream, atomic write), with ``torch.set_num_threads(1)``.
Interpreter start-up and the torch import are not counted. Prints the best of ``--repeats``
runs as wall time and CPU time (this machine is shared: CPU time is the single core's work).

Then a folder of ``--batch-clips`` short clips (``--clip-seconds`` each, 0 clips to skip), encoded side by
side as a user would from a shell, start-up included: one ``telucodec encode`` process per file, and one
batch call (``telucodec encode clips/ out/``) on one core (``--jobs 1 --threads 1``, target >= 20x real time)
and on every core.

    python -m benchmarks.cli_speed [--seconds 60] [--repeats 3] [--input-rate 44100 --channels 2]
        [--batch-clips 42 --clip-seconds 4]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from codec.cli.main import main as cli
from codec.formats.bitstream import read_bitstream
from codec.formats.export import export_codec
from codec.model.codec import build_codec
from codec.runtime.cpus import available_cpus
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--input-rate", type=int, default=16000)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--batch-clips", type=int, default=42)
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
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
        print(
            f"cli_speed: default codec ({sum(p.numel() for p in codec.parameters()) / 1e6:.2f} M parameters, "
            f"{codec.num_levels} levels x {params.quantizer.codebook_size}), {args.seconds:g} s input at "
            f"{args.input_rate} Hz x {args.channels} ch, 1 thread, best of {args.repeats}"
        )
        for name, command in runs.items():
            times = [_timed(command) for _ in range(args.repeats)]
            wall, cpu = min(t[0] for t in times), min(t[1] for t in times)
            print(
                f"  {name}: {wall:.3f} s wall ({args.seconds / wall:.0f}x real time), "
                f"{cpu:.3f} s CPU ({args.seconds / cpu:.0f}x real time)"
            )
        h = read_bitstream(tcq).header
        print(
            f"  bitstream: {h.file_bytes} bytes, {h.nominal_kbps:.2f} kbit/s nominal, "
            f"{h.payload_kbps:.2f} kbit/s achieved (entropy-coded, random weights)"
        )
        if args.batch_clips > 0:
            _batch(tmp, model, args)


def _batch(tmp: Path, model: str, args: argparse.Namespace) -> None:
    """A folder of short clips: a process per file against one batch call, start-up included."""
    clips = tmp / "clips"
    clips.mkdir()
    for i in range(args.batch_clips):
        sf.write(
            clips / f"clip{i:03d}.wav",
            _speechlike(args.clip_seconds, args.input_rate, args.channels)[
                int(i * 0.05 * args.input_rate) % args.input_rate :
            ],
            args.input_rate,
            subtype="PCM_16",
        )
    audio = sum(sf.info(p).duration for p in clips.iterdir())
    cli = [sys.executable, "-m", "codec.cli.main", "encode"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def shell(commands: list[list[str]]) -> float:
        start = time.perf_counter()
        for command in commands:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        return time.perf_counter() - start

    per_file = shell(
        [
            [*cli, str(c), str(tmp / "one" / (c.stem + ".tcq")), "--model", model, "--threads", "1"]
            for c in sorted(clips.iterdir())
        ]
    )
    one_core = shell([[*cli, str(clips), str(tmp / "batch1"), "--model", model, "--threads", "1", "--jobs", "1"]])
    cores = available_cpus()
    every_core = shell([[*cli, str(clips), str(tmp / "batchn"), "--model", model]])
    same = all((tmp / "batch1" / p.name).read_bytes() == p.read_bytes() for p in (tmp / "one").iterdir())
    print(
        f"cli_speed batch: {args.batch_clips} clips of {args.clip_seconds:g} s ({audio:.0f} s of audio), "
        "wall time from the shell, interpreter and torch start-up included"
    )
    for label, seconds in [
        ("a process per file, 1 thread", per_file),
        ("one batch call, --jobs 1, 1 thread", one_core),
        (f"one batch call, every core ({cores})", every_core),
    ]:
        print(
            f"  {label}: {seconds:.1f} s ({audio / seconds:.1f}x real time, {per_file / seconds:.1f}x the "
            "process per file)"
        )
    print(f"  batch output identical to per-file output: {same}")


if __name__ == "__main__":
    main()
