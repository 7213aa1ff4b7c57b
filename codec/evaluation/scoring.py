"""Run the codec (at several level counts) and the Opus baseline on an evaluation set and score them.

Per utterance: one encode with every quantizer level (the first ``n`` levels of a residual
quantizer's codes are exactly what an ``n``-level encode gives), one decode per scored level count,
the Opus round trips in parallel subprocesses, then every metric of :mod:`codec.dsp.metrics` for every
system. Encode and decode of all levels are timed for the real-time factors.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from codec.dsp import metrics as M
from codec.evaluation.opus import OpusError, OpusTools, opus_round_trip
from codec.evaluation.sets import EvalSet
from codec.model.codec import Codec

# name -> True when higher is better (see codec/dsp/metrics.py for the definitions)
METRICS: dict[str, bool] = {
    "snr_db": True,
    "si_snr_db": True,
    "segsnr_db": True,
    "mel_distance": False,
    "lsd_db": False,
    "mrstft_distance": False,
    "stoi": True,
    "pesq_wb": True,
    # No reference: DNSMOS of the decoded audio alone (codec/evaluation/dnsmos.py), on the utterances
    # EvaluateConfig.dnsmos_utterances picks (NaN on the others, skipped by the means).
    "dnsmos_ovrl": True,
    "dnsmos_sig": True,
    "dnsmos_bak": True,
    "dnsmos_p808": True,
    # Cosine of speaker embeddings (codec/evaluation/speaker.py, Resemblyzer's GE2E encoder): NaN on every row
    # when EvaluateConfig.speaker_similarity is off.
    "speaker_similarity": True,
}
DNSMOS_METRICS = ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")
CODEC, OPUS = "codec", "opus"


@dataclass(frozen=True)
class System:
    """One decoded version of the audio: the codec with ``n_q`` levels or Opus at ``opus_kbps``."""

    system: str  # "codec" | "opus"
    setting: str  # "q4" | "6kbps": stable key in metrics.json and file names
    kbps: float  # nominal bitrate
    n_q: int | None = None
    opus_kbps: float | None = None

    @property
    def label(self) -> str:
        """Human-readable name, e.g. ``codec 4 levels (2 kbps)`` or ``Opus 6 kbps``."""
        if self.system == OPUS:
            return f"Opus {self.kbps:g} kbps"
        return f"codec {self.n_q} level{'' if self.n_q == 1 else 's'} ({self.kbps:g} kbps)"


def codec_system(codec: Codec, n_q: int) -> System:
    return System(CODEC, f"q{n_q}", round(codec.bitrate_kbps(n_q), 6), n_q=n_q)


def opus_system(kbps: float) -> System:
    return System(OPUS, f"{kbps:g}kbps", float(kbps), opus_kbps=float(kbps))


@dataclass(frozen=True)
class ScoreRow:
    """The scores of one system on one utterance (NaN where a metric failed; ``errors`` says why)."""

    corpus: str
    utterance: str
    speaker: str | None
    seconds: float
    system: System
    values: dict[str, float]
    errors: list[str]


@dataclass(frozen=True)
class Example:
    """Audio kept for the report's players and spectrograms: ``versions`` maps a system to float32 [T]."""

    corpus: str
    utterance: str
    original: np.ndarray
    versions: dict[System, np.ndarray]


@dataclass
class Timing:
    """Seconds of audio coded and of compute spent encoding / decoding it with every level."""

    audio_seconds: float = 0.0
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0

    def rtf(self) -> tuple[float, float]:
        """Encode and decode real-time factors: audio seconds per compute second (higher is faster)."""
        return (
            self.audio_seconds / self.encode_seconds if self.encode_seconds > 0 else math.inf,
            self.audio_seconds / self.decode_seconds if self.decode_seconds > 0 else math.inf,
        )


@dataclass
class SetResult:
    name: str
    eval_set: EvalSet
    systems: list[System]
    sample_rate: int  # Hz of the audio
    frame_rate: float  # code frames per second
    rows: list[ScoreRow] = field(default_factory=list)
    counts: torch.Tensor | None = None  # [num_levels, K] code histogram over the set
    examples: list[Example] = field(default_factory=list)
    opus_errors: list[str] = field(default_factory=list)
    reference_dnsmos: list[dict[str, float]] = field(default_factory=list)  # of the original audio: the ceiling


def score(
    reference: np.ndarray, estimates: list[np.ndarray], sample_rate: int, speaker_similarity: bool = False
) -> list[tuple[dict[str, float], list[str]]]:
    """Every metric of ``estimates`` (each float [T]) against ``reference [T]``: ``(values, errors)`` each.

    DNSMOS is left NaN (:func:`dnsmos_values` adds it), and so is ``speaker_similarity`` unless asked for."""
    ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32))
    est = torch.from_numpy(np.stack(estimates).astype(np.float32, copy=False))
    refs = ref.expand_as(est)
    batched = {
        "snr_db": M.snr(refs, est),
        "si_snr_db": M.si_snr(refs, est),
        "segsnr_db": M.segmental_snr(refs, est, sample_rate),
        "mel_distance": M.multiscale_mel_distance(refs, est, sample_rate),
        "lsd_db": M.log_spectral_distance(refs, est),
        "mrstft_distance": M.multi_resolution_stft_distance(refs, est),
    }
    if speaker_similarity:
        from codec.evaluation.speaker import speaker_similarities

        speakers = speaker_similarities(reference, estimates, sample_rate)
    else:
        speakers = [M.MetricValue(math.nan)] * len(estimates)
    out = []
    for i, estimate in enumerate(estimates):
        values = {name: float(v[i]) for name, v in batched.items()} | {name: math.nan for name in DNSMOS_METRICS}
        errors = []
        for name, result in (
            ("stoi", M.stoi(reference, estimate, sample_rate)),
            ("pesq_wb", M.pesq_wb(reference, estimate, sample_rate)),
            ("speaker_similarity", speakers[i]),
        ):
            values[name] = result.value
            if result.error:
                errors.append(result.error)
        out.append((values, errors))
    return out


def dnsmos_values(audio: np.ndarray, sample_rate: int) -> tuple[dict[str, float], list[str]]:
    """DNSMOS of one decoded clip ``[T]`` as metric values, or NaNs and the reason.

    Clipped to [-1, 1] first: a decoder may overshoot full scale, and what is written to a file and
    heard is clipped."""
    from codec.evaluation.dnsmos import dnsmos

    try:
        s = dnsmos(np.clip(audio, -1.0, 1.0), sample_rate)
    except (ValueError, RuntimeError) as exc:
        return {name: math.nan for name in DNSMOS_METRICS}, [f"dnsmos: {exc}"]
    return {"dnsmos_ovrl": s.ovrl, "dnsmos_sig": s.sig, "dnsmos_bak": s.bak, "dnsmos_p808": s.p808_mos}, []


def spread_indices(total: int, wanted: int) -> set[int]:
    """``wanted`` indices evenly spread over ``range(total)`` (all of them when ``wanted >= total``)."""
    if wanted <= 0:
        return set()
    if wanted >= total:
        return set(range(total))
    if wanted == 1:
        return {0}
    return {round(i * (total - 1) / (wanted - 1)) for i in range(wanted)}


def example_systems(systems: list[System]) -> list[System]:
    """The versions shown in the report: the codec with the most and the fewest levels, and Opus at
    the bitrate nearest to each of those (duplicates dropped)."""
    codecs = [s for s in systems if s.system == CODEC]
    opus = [s for s in systems if s.system == OPUS]
    chosen = [codecs[-1], codecs[0]] if codecs else []
    chosen += [min(opus, key=lambda o: (abs(o.kbps - c.kbps), o.kbps)) for c in chosen] if opus else []
    return list(dict.fromkeys(chosen))


def evaluate_set(
    codec: Codec,
    eval_set: EvalSet,
    levels: list[int],
    opus_kbps: list[float],
    tools: OpusTools | None,
    device: torch.device,
    timing: Timing,
    examples: int = 0,
    jobs: int = 1,
    dnsmos_utterances: int = 0,
    speaker_similarity: bool = False,
) -> SetResult:
    """Score the codec at ``levels`` and Opus at ``opus_kbps`` (when ``tools``) on every utterance.

    ``timing`` accumulates the encode/decode compute of all levels; ``examples`` first utterances
    keep their audio for the report; ``dnsmos_utterances`` (evenly spread) also get DNSMOS, every
    system and the original, ``jobs`` clips at a time; ``speaker_similarity`` scores every system's
    speaker similarity to the original.
    """
    rate = codec.sample_rate
    systems = [codec_system(codec, n) for n in levels] + ([opus_system(k) for k in opus_kbps] if tools else [])
    result = SetResult(
        eval_set.name,
        eval_set,
        systems,
        rate,
        codec.frame_rate,
        counts=torch.zeros(codec.num_levels, codec.quantizer.codebook_size, dtype=torch.float64),
    )
    shown = example_systems(systems)
    with_dnsmos = spread_indices(len(eval_set.utterances), dnsmos_utterances)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for index, utt in enumerate(eval_set.utterances):
            # The codec runs alone first: Opus processes running beside it would skew its timing.
            waves, codes = _run_codec(codec, utt.audio, levels, device, timing)
            opus_jobs = [_submit_opus(pool, utt.audio, rate, s, tools) for s in systems if s.system == OPUS]
            assert result.counts is not None  # set above
            result.counts += M.code_histograms(codes, codec.quantizer.codebook_size)
            decoded: dict[System, np.ndarray | None] = dict(zip(systems, waves))
            for system, job in zip(systems[len(waves) :], opus_jobs):
                try:
                    decoded[system] = job.result()
                except OpusError as exc:
                    result.opus_errors.append(f"{eval_set.name}/{utt.id} at {system.kbps:g} kbps: {exc}")
                    decoded[system] = None
            present = {s: d for s in systems if (d := decoded[s]) is not None}
            scored = list(present)
            scores = dict(zip(scored, score(utt.audio, list(present.values()), rate, speaker_similarity)))
            if index in with_dnsmos:  # onnxruntime releases the GIL: the pool's threads run clips side by side
                jobs_by_system = {s: pool.submit(dnsmos_values, present[s], rate) for s in scored}
                reference = pool.submit(dnsmos_values, utt.audio, rate)
                for system, dnsmos_job in jobs_by_system.items():
                    values, errors = dnsmos_job.result()
                    scores[system][0].update(values)
                    scores[system][1].extend(errors)
                values, _ = reference.result()
                result.reference_dnsmos.append(values)
            for system in systems:
                values, errors = scores.get(system, ({name: math.nan for name in METRICS}, ["opus: round trip failed"]))
                result.rows.append(
                    ScoreRow(eval_set.name, utt.id, utt.speaker, utt.seconds(rate), system, values, errors)
                )
            if index < examples:
                result.examples.append(
                    Example(eval_set.name, utt.id, utt.audio, {s: d for s in shown if (d := decoded[s]) is not None})
                )
    return result


def _submit_opus(
    pool: ThreadPoolExecutor, audio: np.ndarray, rate: int, system: System, tools: OpusTools | None
) -> Future[np.ndarray]:
    """Start the Opus round trip of ``audio`` for the Opus ``system`` (which exist only with ``tools``)."""
    assert system.opus_kbps is not None and tools is not None
    return pool.submit(opus_round_trip, audio, rate, system.opus_kbps, tools)


@torch.no_grad()
def _run_codec(
    codec: Codec, audio: np.ndarray, levels: list[int], device: torch.device, timing: Timing
) -> tuple[list[np.ndarray], torch.Tensor]:
    """Decoded waveforms (float32 [T]) for each level count, and the all-level codes ``[1, L, F]`` on the CPU."""
    x = torch.from_numpy(audio).to(device).view(1, 1, -1)
    length = x.shape[-1]
    start = _clock(device)
    codes = codec.encode(x, codec.num_levels)
    middle = _clock(device)
    full = codec.decode(codes)
    timing.encode_seconds += middle - start
    timing.decode_seconds += _clock(device) - middle
    timing.audio_seconds += length / codec.sample_rate
    outputs = [full if n == codec.num_levels else codec.decode(codes[:, :n]) for n in levels]
    return [y[0, 0, :length].float().cpu().numpy() for y in outputs], codes.cpu()


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def warm_up(codec: Codec, device: torch.device, seconds: float = 1.0) -> None:
    """One untimed encode/decode so lazy initialisation (CUDA kernels, allocator) is not timed."""
    with torch.no_grad():
        x = torch.zeros(1, 1, int(seconds * codec.sample_rate), device=device)
        codec.decode(codec.encode(x, codec.num_levels))
    _clock(device)
