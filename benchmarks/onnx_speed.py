"""ONNX against PyTorch eager: speed at 1 and 2 threads, and agreement on real speech.

    python -m benchmarks.onnx_speed [--model pretrained/telucodec-te/telucodec-te.safetensors] [--threads 1 2]
        [--seconds 20] [--repeats 5] [--shards runs/rb/corpus/shards] [--max-utterances 0] [--json out.json]
        [--skip-speed | --skip-agreement]

Speed: one clip of real speech (chai-bisket-te clips joined up to ``--seconds``), encoded and decoded whole (one chunk,
as ``telucodec`` does a clip of up to 20 s) by torch eager, by the ONNX graphs (onnxruntime, float32), by the int8
decoder (``export-onnx --int8``; it encodes as float32) and by an int8 encoder (its convolutions as ConvInteger, not
shipped: measured to show why); ``--repeats`` rounds with the systems interleaved (a busy machine slows them alike),
the median kept. Real-time factor = audio seconds / compute seconds; speed-up = ONNX's factor / torch's.

Agreement: every utterance of the test split of ``--shards`` (``codec.evaluation.sets.load_test_split``), encoded
with ``codec.model.chunked.encode_waveform`` by each backend (as ``telucodec encode`` and ``tokenize`` do): the share
of codes identical to torch's (overall and per level); the torch codes decoded by torch, by ONNX and by the int8
decoder: the SNR of ONNX's difference from torch's decode (all utterances together, and the worst one); PESQ-WB and
STOI of each backend's own decode of its own codes against the input. Nothing here is asserted: the figures are
the output (a table, and ``--json``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from codec.evaluation.sets import load_test_split
from codec.formats.export import ExportedCodec, load_export
from codec.formats.onnx import export_onnx, quantize_int8
from codec.formats.onnx_runtime import OnnxCodec, session
from codec.model.chunked import decode_codes, encode_waveform
from codec.runtime.io import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "pretrained" / "telucodec-te" / "telucodec-te.safetensors"
CORPUS = ROOT.parent / "shared" / "corpora" / "chai-bisket-te"
SHARDS = ROOT / "runs" / "rb" / "corpus" / "shards"
CHUNK_FRAMES = 1000  # 20 s at 50 frames/s: the CLI's and tokenize's chunk


def real_clip(folder: Path, seconds: float, rate: int) -> np.ndarray:
    """Clips of ``folder`` (sorted by name) joined until ``seconds`` of audio at ``rate``."""
    import soxr

    pieces, total = [], 0
    for path in sorted(folder.glob("*.wav")):
        audio, source_rate = sf.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if source_rate != rate:
            audio = soxr.resample(audio, source_rate, rate)
        pieces.append(audio)
        total += audio.shape[0]
        if total >= seconds * rate:
            break
    if not pieces:
        raise SystemExit(f"no .wav clips in {folder}")
    return np.concatenate(pieces)[: int(seconds * rate)].astype(np.float32)


class Int8Encoder:
    """The encoder graph with its convolutions quantized to int8 (ConvInteger): measured, not shipped."""

    def __init__(self, folder: Path, threads: int, hop: int):
        data = quantize_int8((folder / "encoder.onnx").read_bytes(), convolutions=True)
        path = folder / "encoder.conv-int8.onnx"
        path.write_bytes(data)
        self.session, self.hop = session(path, threads), hop

    def encode(self, audio: np.ndarray, n_q: int) -> np.ndarray:
        padded = np.pad(audio, (0, (-audio.shape[0]) % self.hop)).reshape(1, 1, -1)
        return self.session.run(None, {"audio": padded})[0][:n_q]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def speed(exported: ExportedCodec, folder: Path, clip: np.ndarray, threads: list[int], repeats: int) -> list[dict]:
    rows = []
    for n in threads:
        rows += _speed_at(exported, folder, clip, n, repeats)
    torch.set_num_threads(max(threads))
    return rows


def _speed_at(exported: ExportedCodec, folder: Path, clip: np.ndarray, n: int, repeats: int) -> list[dict]:
    codec = exported.codec
    seconds = clip.shape[0] / codec.sample_rate
    x = torch.from_numpy(clip).view(1, 1, -1)
    torch.set_num_threads(n)
    onnx, int8 = OnnxCodec(exported, folder, threads=n), OnnxCodec(exported, folder, threads=n, int8=True)
    conv_int8 = Int8Encoder(folder, n, codec.hop_length)
    with torch.inference_mode():
        codes = codec.encode(x)
        systems: dict[str, tuple[Any, Any]] = {
            "torch eager": (lambda: codec.encode(x), lambda: codec.decode(codes)),
            "onnx float32": (lambda: onnx.encode(x), lambda: onnx.decode(codes)),
            "onnx int8 decoder": (None, lambda: int8.decode(codes)),
            "onnx int8 encoder (ConvInteger, not shipped)": (lambda: conv_int8.encode(clip, codec.num_levels), None),
        }
        for enc, dec in systems.values():  # warm-up: first-call allocations, thread pools
            for fn in (enc, dec):
                if fn is not None:
                    fn()
        times: dict[str, dict[str, list[float]]] = {name: {"encode": [], "decode": []} for name in systems}
        for _ in range(repeats):
            for name, (enc, dec) in systems.items():
                if enc is not None:
                    times[name]["encode"].append(_timed(enc))
                if dec is not None:
                    times[name]["decode"].append(_timed(dec))
    base = {k: seconds / statistics.median(times["torch eager"][k]) for k in ("encode", "decode")}
    rows = []
    for name, measured in times.items():
        row: dict[str, Any] = {"system": name, "threads": n}
        for kind in ("encode", "decode"):
            if measured[kind]:
                rtf = seconds / statistics.median(measured[kind])
                row[f"{kind}_rtf"], row[f"{kind}_speedup"] = rtf, rtf / base[kind]
        rows.append(row)
    return rows


def _snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    noise = float(np.sum((reference - estimate) ** 2, dtype=np.float64))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(reference**2, dtype=np.float64)) / noise)


def agreement(exported: ExportedCodec, folder: Path, shards: Path, max_utterances: int, threads: int) -> dict:
    from codec.dsp.metrics import pesq_wb, stoi

    codec, rate = exported.codec, exported.codec.sample_rate
    torch.set_num_threads(threads)
    onnx, int8 = OnnxCodec(exported, folder, threads=threads), OnnxCodec(exported, folder, threads=threads, int8=True)
    conv_int8 = Int8Encoder(folder, threads, codec.hop_length)
    test = load_test_split(shards, rate, max_utterances)
    levels = codec.num_levels
    equal = {"onnx": np.zeros(levels), "int8 encoder": np.zeros(levels)}
    frames = 0
    differing: list[dict[str, Any]] = []
    signal = {"onnx": 0.0, "int8": 0.0}
    noise = {"onnx": 0.0, "int8": 0.0}
    worst = {"onnx": float("inf"), "int8": float("inf")}
    scores: dict[str, dict[str, list[float]]] = {k: {"pesq_wb": [], "stoi": []} for k in ("torch", "onnx", "int8")}

    def decode(runner, codes, n):
        return np.concatenate(list(decode_codes(runner, codes, n, CHUNK_FRAMES)))

    with torch.inference_mode():
        for utt in test.utterances:
            audio, n = utt.audio, utt.audio.shape[0]
            ref = encode_waveform(codec, audio, levels, CHUNK_FRAMES)
            got = encode_waveform(onnx, audio, levels, CHUNK_FRAMES)
            quantized = conv_int8.encode(audio, levels)
            equal["onnx"] += (ref == got).sum(dim=1).numpy()
            equal["int8 encoder"] += (ref.numpy() == quantized).sum(axis=1)
            frames += ref.shape[1]
            if not torch.equal(ref, got):
                where = (ref != got).nonzero()
                differing.append({"id": utt.id, "codes": int(where.shape[0]), "first_level": int(where[:, 0].min())})
            torch_audio = decode(codec, ref, n)
            for name, runner in (("onnx", onnx), ("int8", int8)):
                other = decode(runner, ref, n)
                signal[name] += float(np.sum(torch_audio**2, dtype=np.float64))
                noise[name] += float(np.sum((torch_audio - other) ** 2, dtype=np.float64))
                worst[name] = min(worst[name], _snr(torch_audio, other))
            own = {"torch": torch_audio, "onnx": decode(onnx, got, n), "int8": decode(int8, got, n)}
            for name, out in own.items():
                scores[name]["pesq_wb"].append(pesq_wb(audio, out, rate).value)
                scores[name]["stoi"].append(stoi(audio, out, rate).value)
    total = frames * levels

    def mean(values: list[float]) -> float:
        finite = [v for v in values if np.isfinite(v)]
        return float(np.mean(finite)) if finite else float("nan")

    return {
        "utterances": len(test.utterances),
        "seconds": sum(u.audio.shape[0] for u in test.utterances) / rate,
        "codes": total,
        "identical_share": {k: float(v.sum() / total) for k, v in equal.items()},
        "identical_share_per_level": {k: (v / frames).tolist() for k, v in equal.items()},
        "utterances_with_differences": differing,
        "decode_difference_snr_db": {
            k: {
                "all": float("inf") if noise[k] == 0 else 10 * np.log10(signal[k] / noise[k]),
                "worst_utterance": worst[k],
            }
            for k in signal
        },
        "pesq_wb": {k: mean(v["pesq_wb"]) for k, v in scores.items()},
        "stoi": {k: mean(v["stoi"]) for k, v in scores.items()},
    }


def print_speed(rows: list[dict]) -> None:
    print("| system | threads | encode RTF | vs torch | decode RTF | vs torch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        enc = f"{r['encode_rtf']:.1f}x | {r['encode_speedup']:.2f}" if "encode_rtf" in r else "(float32) | "
        dec = f"{r['decode_rtf']:.1f}x | {r['decode_speedup']:.2f}" if "decode_rtf" in r else "- | "
        print(f"| {r['system']} | {r['threads']} | {enc} | {dec} |")


def print_agreement(a: dict) -> None:
    print(f"\n{a['utterances']} test utterances, {a['seconds']:.1f} s, {a['codes']} codes")
    for k, v in a["identical_share"].items():
        print(f"- codes identical to torch's, {k}: {100 * v:.3f}%")
    print(f"- utterances with a differing code (onnx): {len(a['utterances_with_differences'])}")
    for k, v in a["decode_difference_snr_db"].items():
        worst = v["worst_utterance"]
        print(f"- decode of torch's codes, SNR of {k} - torch: {v['all']:.1f} dB (worst utterance {worst:.1f})")
    print("| backend | PESQ-WB | STOI |\n| --- | ---: | ---: |")
    for k in a["pesq_wb"]:
        print(f"| {k} | {a['pesq_wb'][k]:.3f} | {a['stoi'][k]:.4f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODEL, help="an export")
    ap.add_argument("--onnx", type=Path, help="its ONNX graphs with --int8 (default: exported to a temporary folder)")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="folder of real speech clips for the speed runs")
    ap.add_argument("--seconds", type=float, default=20.0, help="audio in the speed clip")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shards", type=Path, default=SHARDS, help="prepared shards with a test split")
    ap.add_argument("--max-utterances", type=int, default=0, help="of the test split (0: all)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-agreement", action="store_true")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    args = ap.parse_args(argv)
    exported = load_export(args.model)
    results: dict[str, Any] = {"model": str(args.model), "model_id": exported.model_id}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.onnx or Path(tmp) / "onnx"
        if args.onnx is None:
            export_onnx(exported, folder, int8=True)
        if not args.skip_speed:
            clip = real_clip(args.corpus, args.seconds, exported.codec.sample_rate)
            results["clip_seconds"] = clip.shape[0] / exported.codec.sample_rate
            results["speed"] = speed(exported, folder, clip, args.threads, args.repeats)
            print(f"speed: {results['clip_seconds']:.1f} s of {args.corpus.name}, median of {args.repeats}")
            print_speed(results["speed"])
        if not args.skip_agreement:
            results["agreement"] = agreement(exported, folder, args.shards, args.max_utterances, min(args.threads))
            print_agreement(results["agreement"])
    if args.json:
        write_json_atomic(args.json, results)


if __name__ == "__main__":
    main()
