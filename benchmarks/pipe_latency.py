"""End-to-end latency of the live pipe, `telucodec stream-encode | telucodec stream-decode`, beside Opus.

    python -m benchmarks.pipe_latency [--model pretrained/telucodec-te-stream/telucodec-te-stream.safetensors]
        [--clip WAV] [--chunks-ms 20 40 80] [--seconds 12] [--opus-kbps 6]

A real clip (default: the longest of chai-bisket-te) is played into the encoder as a live source would: sample
``n`` exists at ``t0 + n / rate``, and each chunk of ``--chunks-ms`` is written to the encoder's stdin (16-bit PCM)
the moment its last sample exists. A thread reads the decoder's stdout and stamps every read with the samples
out so far. A chunk's latency is the wall time from its first sample existing to that sample's decoded value
leaving the decoder: the chunk's own duration (the sample waits for the rest of its chunk), the model's
look-ahead, and every process's compute and pipe hops. The design allows the chunk duration plus the algorithmic
latency (:func:`codec.model.streaming.algorithmic_latency`: one frame plus the look-ahead; for a chunk of whole
frames the frame's wait lies inside the chunk's, so the floor is the chunk plus the look-ahead).

Opus is measured the same way through a live libopus pipe (:mod:`benchmarks.opus_live`: 20 ms frames, constant
bitrate, each packet written the moment it is coded; ``opusenc | opusdec`` holds its whole input back), its
algorithmic latency a 20 ms frame plus the encoder's look-ahead (6.5 ms at 16 kHz). Each process of a pipe runs on
its own core (the encoder on the first core given, the decoder on the second) with one thread; run it with
nothing else on the cores. Prints a Markdown table; ``--json`` keeps every figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from benchmarks import opus_live
from codec.cli.common import PRETRAINED_STREAM_MODEL
from codec.formats.export import load_export
from codec.model.streaming import algorithmic_latency
from codec.runtime.io import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "chai-bisket-te"
TELUCODEC = str(Path(sys.executable).parent / "telucodec")


def longest_clip(corpus: Path) -> Path:
    clips = sorted(corpus.glob("*.wav"))
    if not clips:
        raise SystemExit(f"error: no WAV clips in {corpus}: pass --clip")
    return max(clips, key=lambda p: (sf.info(p).frames, p.name))


def pinned(core: int):
    """A preexec_fn that keeps a child process on one core."""
    return lambda: os.sched_setaffinity(0, {core})


def play(
    commands: list[list[str]], audio: np.ndarray, rate: int, chunk: int, cores: tuple[int, int], warm_up_s: float
) -> np.ndarray:
    """Run ``commands[0] | commands[1]``, feed ``audio`` (int16) at real-time pace in chunks of ``chunk``
    samples; return each chunk's latency in seconds (first sample existing -> its decoded value read)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    enc = subprocess.Popen(
        commands[0], stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=pinned(cores[0]), env=env
    )
    dec = subprocess.Popen(commands[1], stdin=enc.stdout, stdout=subprocess.PIPE, preexec_fn=pinned(cores[1]), env=env)
    assert enc.stdin is not None and enc.stdout is not None and dec.stdout is not None
    enc.stdout.close()  # the decoder holds it now
    reads: list[tuple[float, int]] = []  # (time, bytes out so far)

    def reader(fd: int) -> None:
        total = 0
        while data := os.read(fd, 1 << 16):
            total += len(data)
            reads.append((time.perf_counter(), total))

    thread = threading.Thread(target=reader, args=(dec.stdout.fileno(),), daemon=True)
    thread.start()
    time.sleep(warm_up_s)  # the processes load (torch, the model) before the clock starts
    pcm = audio.astype("<i2")
    starts = range(0, pcm.shape[0] - chunk + 1, chunk)
    t0 = time.perf_counter()
    for k, start in enumerate(starts):
        time.sleep(max(0.0, t0 + (k + 1) * chunk / rate - time.perf_counter()))  # the chunk's last sample exists
        enc.stdin.write(pcm[start : start + chunk].tobytes())
        enc.stdin.flush()
    enc.stdin.close()
    thread.join(timeout=60)
    if enc.wait(timeout=60) or dec.wait(timeout=60):
        raise SystemExit(f"error: {' | '.join(c[0] for c in commands)} failed ({enc.returncode}, {dec.returncode})")
    times = np.array([t for t, _ in reads])
    samples_out = np.array([n // 2 for _, n in reads])  # 16-bit samples
    latencies = []
    for k, start in enumerate(starts):
        i = int(np.searchsorted(samples_out, start + 1))  # the first read that holds sample `start`
        if i == len(times):
            break
        latencies.append(times[i] - (t0 + k * chunk / rate))
    return np.asarray(latencies)


def row(name: str, chunk_ms: float, design_ms: float, floor_ms: float, latencies: np.ndarray) -> dict[str, Any]:
    ms = 1000 * latencies
    return {
        "system": name,
        "chunk_ms": chunk_ms,
        "design_ms": design_ms,
        "floor_ms": floor_ms,
        "chunks": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=PRETRAINED_STREAM_MODEL, help="a causal export")
    ap.add_argument("--clip", type=Path, help="a real speech clip (default: the longest of chai-bisket-te)")
    ap.add_argument("--chunks-ms", type=float, nargs="+", default=[20.0, 40.0, 80.0])
    ap.add_argument("--seconds", type=float, default=12.0, help="of the clip played per chunk size")
    ap.add_argument("--opus-kbps", type=float, default=6.0)
    ap.add_argument("--cores", type=int, nargs=2, default=[0, 1], help="the encoder's and the decoder's core")
    ap.add_argument("--warm-up-s", type=float, default=6.0, help="for the processes to load, before the clock starts")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    args = ap.parse_args()
    codec = load_export(args.model).codec
    latency = algorithmic_latency(codec)
    rate = codec.sample_rate
    audio, clip_rate = sf.read(args.clip or longest_clip(CORPUS), dtype="int16", always_2d=True)
    if clip_rate != rate:
        raise SystemExit(f"error: the clip is at {clip_rate} Hz; the model codes {rate} Hz")
    audio = audio[: int(args.seconds * rate), 0]
    opus_ms = opus_live.FRAME_MS + 1000 * opus_live.lookahead_samples(rate) / rate
    rows = []
    for chunk_ms in args.chunks_ms:
        chunk = round(chunk_ms / 1000 * rate)
        name = f"telucodec ({latency.total_ms:g} ms)"
        ours = [
            [TELUCODEC, "stream-encode", "--input-format", "raw", "--input-rate", str(rate), "--chunk-ms",
             f"{chunk_ms:g}", "--model", str(args.model), "--threads", "1"],
            [TELUCODEC, "stream-decode", "--output-format", "raw", "--model", str(args.model), "--threads", "1"],
        ]  # fmt: skip
        lat = play(ours, audio, rate, chunk, tuple(args.cores), args.warm_up_s)
        rows.append(row(name, chunk_ms, chunk_ms + latency.total_ms, chunk_ms + latency.lookahead_ms, lat))
        live = [sys.executable, "-m", "benchmarks.opus_live"]
        opus = [
            [*live, "encode", "--rate", str(rate), "--kbps", f"{args.opus_kbps:g}"],
            [*live, "decode", "--rate", str(rate)],
        ]
        lat = play(opus, audio, rate, chunk, tuple(args.cores), args.warm_up_s)
        rows.append(row(f"Opus {args.opus_kbps:g} kbps ({opus_ms:g} ms)", chunk_ms, chunk_ms + opus_ms, chunk_ms, lat))
        print(f"chunk {chunk_ms:g} ms done", file=sys.stderr, flush=True)
    print("| system | chunk | design bound | p50 ms | p99 ms | max ms | p99 over the bound | chunks |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['system']} | {r['chunk_ms']:g} ms | {r['design_ms']:g} ms | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['max_ms']:.1f} | {r['p99_ms'] - r['design_ms']:+.1f} ms | {r['chunks']} |"
        )
    if args.json:
        write_json_atomic(args.json, {"model": str(args.model), "latency_ms": latency._asdict(), "rows": rows})


if __name__ == "__main__":
    main()
