"""Speed of the prepare stage (decode + resample + trim + Parquet write), in x real time.

Generates, deterministically and in a temp dir, an hour (default) of speech-like test audio
per input rate: many 2-6 s mono 16-bit WAV files of a pitch-gliding sawtooth "voice" with a
syllable-rate envelope, breath noise and silent margins. Then runs the whole prepare (all
shards, merge) on each and prints seconds of audio / wall seconds. Target: >= 1000x.
The real corpus (../shared/corpora/chai-bisket-te) is timed too when it is present.

    python -m benchmarks.prepare_speed [--hours 1.0] [--rates 22050 44100] [--workers 0] [--skip-real-corpus]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from codec.config.prepare import PrepareConfig
from codec.data.prepare import run_prepare

ROOT = Path(__file__).resolve().parents[1]

TARGET_RATE = 16000
REAL_CORPUS = ROOT.parent / "shared" / "corpora" / "chai-bisket-te"


def speech_like(rng: np.random.Generator, seconds: float, rate: int) -> np.ndarray:
    """(seconds * rate,) float32: a voiced buzz with syllable envelope, noise, and quiet ends."""
    n = int(seconds * rate)
    t = np.arange(n, dtype=np.float32) / np.float32(rate)
    f0 = rng.uniform(90, 240) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t, dtype=np.float32))
    phase = np.cumsum(f0 / np.float32(rate), dtype=np.float32) % np.float32(1.0)
    envelope = np.maximum(np.sin(2 * np.pi * rng.uniform(3, 6) * t, dtype=np.float32), np.float32(0.05))
    x = (2 * phase - 1) * envelope * np.float32(0.3) + rng.standard_normal(n, dtype=np.float32) * np.float32(0.01)
    margin = int(0.2 * rate)
    x[:margin] *= np.float32(0.001)
    x[-margin:] *= np.float32(0.001)
    return x


def make_corpus(
    folder: Path,
    rate: int,
    hours: float,
    seed: int,
    *,
    seconds_range: tuple[float, float] = (2.0, 6.0),
    speakers: int = 20,
) -> float:
    """Write WAV files of ``rate`` Hz and ``seconds_range`` each, in ``speakers`` folders, totalling at least
    ``hours``; returns their seconds."""
    rng = np.random.default_rng(seed)
    total, i = 0.0, 0
    while total < hours * 3600:
        seconds = float(rng.uniform(*seconds_range))
        sub = folder / f"spk{i % speakers:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        sf.write(sub / f"utt{i:06d}.wav", speech_like(rng, seconds, rate), rate, subtype="PCM_16")
        total += int(seconds * rate) / rate
        i += 1
    return total


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the prepare worker pool)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_prepare(corpus: Path, work: Path, fmt: str, workers: int) -> tuple[float, float, float, int]:
    """(source seconds, wall seconds, CPU seconds, rejected) of one full prepare run."""
    cfg = PrepareConfig(corpus=str(corpus), format=fmt, workers=workers)
    cpu, start = cpu_seconds(), time.perf_counter()
    stats, summaries = run_prepare(cfg, TARGET_RATE, work / "shards", work / "stats.json", work / "rejected.csv")
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return sum(s.source_seconds for s in summaries), wall, cpu, stats.rejected


def report(name: str, seconds: float, wall: float, cpu: float, rejected: int) -> None:
    # CPU seconds show the cost independently of other load on the machine.
    print(
        f"{name}: {seconds / 3600:.2f} h in {wall:.2f} s = {seconds / wall:.0f}x real time "
        f"(CPU {cpu:.2f} s = {seconds / cpu:.0f}x per busy core; {rejected} rejected)"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0, help="hours of audio per input rate")
    ap.add_argument("--rates", type=int, nargs="+", default=[22050, 44100])
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    ap.add_argument("--skip-real-corpus", action="store_true", help=f"leave out {REAL_CORPUS} even when present")
    args = ap.parse_args(argv)
    print(f"prepare speed, target {TARGET_RATE} Hz, soxr HQ, zstd Parquet, workers={args.workers or 'all'}")
    with tempfile.TemporaryDirectory(prefix="prepare_speed_") as tmp:
        for rate in args.rates:
            corpus, work = Path(tmp) / f"corpus_{rate}", Path(tmp) / f"out_{rate}"
            start = time.perf_counter()
            generated = make_corpus(corpus, rate, args.hours, seed=rate)
            print(f"  generated {generated / 3600:.2f} h at {rate} Hz in {time.perf_counter() - start:.1f} s")
            report(f"{rate:>6} Hz", *time_prepare(corpus, work, "folder", args.workers))
        if REAL_CORPUS.is_dir() and not args.skip_real_corpus:
            report(
                "chai-bisket-te (16 kHz ULCA)", *time_prepare(REAL_CORPUS, Path(tmp) / "out_real", "ulca", args.workers)
            )


if __name__ == "__main__":
    main()
