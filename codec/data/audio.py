"""Audio clean-up for corpus preparation: pure functions on numpy arrays.

Conventions: a waveform is a 1-D ``float32`` array of samples in [-1, 1] (mono) or a
``(frames, channels)`` array straight from the decoder; rates are in Hz, lengths in samples.
:func:`process_file` chains them for one source file: decode -> downmix -> resample (soxr)
-> remove DC -> reject silence -> clip -> trim -> segment -> 16-bit PCM.
Bad input raises :class:`AudioRejected` with a short reason; nothing here writes files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import soundfile as sf
import soxr

from codec.config.prepare import AudioOptions

# What the readers and the CLI's folder mode take for audio: what soundfile (libsndfile) decodes.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus")

TRIM_FRAME_SECONDS = 0.01  # frame length of the energy envelope used by the trim
PCM16_SCALE = 32767.0

# libsndfile logs "data : <declared> (should be <present>)" for a WAV cut short after its header.
_WAV_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # sizes written by pipes that never seek back
# Integer subtypes read losslessly as integers, with the scale libsndfile uses for float reads.
_INTEGER_READS = {
    "PCM_S8": ("int16", 1 / 32768),
    "PCM_U8": ("int16", 1 / 32768),
    "PCM_16": ("int16", 1 / 32768),
    "PCM_24": ("int32", 1 / 2147483648),
    "PCM_32": ("int32", 1 / 2147483648),
}


class AudioRejected(Exception):
    """A file or segment is unusable. ``reason`` is a short kind (``silent``, ``too-short``...),
    ``detail`` says why in words; ``str()`` gives ``"reason: detail"``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class Decoded(NamedTuple):
    samples: np.ndarray  # (frames, channels) float32
    sample_rate: int  # Hz


def decode(path: str | Path) -> Decoded:
    """Read any libsndfile format (wav 8/16/24/32-bit and float, flac, ogg, mp3) as float32.

    Raises :class:`AudioRejected`: ``missing``, ``not-a-file`` (a folder), ``unreadable`` (not audio,
    corrupt header), ``empty`` (0 bytes, or no frames), ``truncated`` (fewer frames than the header declares),
    ``non-finite`` (NaN/inf samples in a float file).
    """
    path = Path(path)
    # Said in words before libsndfile sees them ("Format not recognised", "System error" say nothing).
    if path.is_dir():
        raise AudioRejected("not-a-file", "a folder, named like an audio file")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise AudioRejected("missing", "no such file") from None
    except OSError as exc:
        raise AudioRejected("unreadable", _one_line(exc)) from None
    if size == 0:
        raise AudioRejected("empty", "the file has 0 bytes")
    try:
        with sf.SoundFile(str(path)) as f:
            declared, log, rate, subtype = f.frames, f.extra_info, f.samplerate, f.subtype
            integer = _INTEGER_READS.get(subtype)
            if integer is None:
                samples = f.read(dtype="float32", always_2d=True)
            else:
                # libsndfile's own int -> float conversion is ~4x slower than numpy's.
                dtype, scale = integer
                samples = np.multiply(f.read(dtype=dtype, always_2d=True), np.float32(scale), dtype=np.float32)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioRejected("unreadable", _one_line(exc)) from None
    if samples.shape[0] == 0:
        raise AudioRejected("empty", "no audio frames")
    # Compressed formats estimate their length from headers: allow a 1% slack before calling it cut.
    if samples.shape[0] < declared * 0.99:
        raise AudioRejected("truncated", f"read {samples.shape[0]} of {declared} frames")
    short = _WAV_SHORT_DATA.search(log)
    if short and int(short.group(1)) not in _STREAMING_SIZES and int(short.group(2)) < int(short.group(1)):
        raise AudioRejected("truncated", f"data chunk declares {short.group(1)} bytes, file holds {short.group(2)}")
    if subtype in ("FLOAT", "DOUBLE") and not np.isfinite(samples).all():
        raise AudioRejected("non-finite", "NaN or infinite samples")
    return Decoded(samples, int(rate))


class AudioStream(NamedTuple):
    """A file read block by block: its rate and the mono float32 pieces at the target rate."""

    source_rate: int
    pieces: Iterator[np.ndarray]


def stream_mono(
    path: str | Path, sample_rate: int, block_seconds: float = 10.0, quality: Literal["HQ", "VHQ"] = "HQ"
) -> AudioStream:
    """Read ``path`` in blocks, downmixed, resampled to ``sample_rate`` (soxr, streaming) and clipped.

    Memory stays that of one block whatever the file's length; the samples equal
    ``clip(resample(to_mono(decode(path).samples), ...))`` up to the resampler's streaming rounding
    (exactly when no resampling is needed). Raises :class:`AudioRejected` (``unreadable``) when the
    file cannot be opened; non-finite samples raise ``non-finite`` while streaming.
    """
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioRejected("unreadable", _one_line(exc)) from None
    source_rate = int(f.samplerate)

    def blocks() -> Iterator[np.ndarray]:
        with f:
            reader = f.blocks(blocksize=max(1, int(block_seconds * source_rate)), dtype="float32", always_2d=True)
            while True:
                try:
                    block = next(reader, None)
                except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
                    raise AudioRejected("unreadable", _one_line(exc)) from None
                if block is None:
                    return
                yield block

    return AudioStream(source_rate, mono_pieces(blocks(), source_rate, sample_rate, quality))


def array_blocks(samples: np.ndarray, source_rate: int, block_seconds: float = 10.0) -> Iterator[np.ndarray]:
    """An in-memory ``(frames, channels)`` or ``(frames,)`` signal cut as :func:`stream_mono` cuts a file, so
    :func:`mono_pieces` gives the same samples for the same audio (float32, as libsndfile reads it)."""
    samples = samples[:, None] if samples.ndim == 1 else samples
    size = max(1, int(block_seconds * source_rate))
    for start in range(0, samples.shape[0], size):
        yield np.asarray(samples[start : start + size], dtype=np.float32)


def mono_pieces(
    blocks: Iterator[np.ndarray], source_rate: int, sample_rate: int, quality: Literal["HQ", "VHQ"] = "HQ"
) -> Iterator[np.ndarray]:
    """``(frames, channels)`` float32 blocks at ``source_rate`` -> mono pieces at ``sample_rate`` (channels averaged,
    soxr streaming resampler, clipped to [-1, 1]). Non-finite samples raise :class:`AudioRejected` (``non-finite``)."""
    stream = (
        None
        if source_rate == sample_rate
        else soxr.ResampleStream(source_rate, sample_rate, 1, dtype="float32", quality=quality)
    )
    for block in blocks:
        if not np.isfinite(block).all():
            raise AudioRejected("non-finite", "NaN or infinite samples")
        mono = to_mono(block)
        yield clip(mono if stream is None else stream.resample_chunk(mono))
    if stream is not None:
        yield clip(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(frames, channels) or (frames,) -> contiguous (frames,) float32, channels averaged."""
    if samples.ndim == 1:
        return np.ascontiguousarray(samples, dtype=np.float32)
    if samples.shape[1] == 1:
        return np.ascontiguousarray(samples[:, 0], dtype=np.float32)
    return samples.mean(axis=1, dtype=np.float32)


def resample(x: np.ndarray, rate_in: int, rate_out: int, quality: Literal["HQ", "VHQ"] = "HQ") -> np.ndarray:
    """Band-limited resampling of mono ``x`` from ``rate_in`` to ``rate_out`` Hz with soxr."""
    if rate_in == rate_out:
        return x
    return soxr.resample(x, rate_in, rate_out, quality=quality)


def remove_dc(x: np.ndarray) -> np.ndarray:
    """Subtract the mean (a constant offset carries no sound and wastes codec range)."""
    return x - np.float32(x.mean(dtype=np.float64))


def clip(x: np.ndarray) -> np.ndarray:
    """Limit to [-1, 1]; resampling can overshoot full-scale input slightly."""
    return np.clip(x, -1.0, 1.0)


def peak_dbfs(x: np.ndarray) -> float:
    """Peak level in dB relative to full scale (1.0); -inf for all-zero input."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def trim_bounds(
    x: np.ndarray, sample_rate: int, top_db: float, frame_seconds: float = TRIM_FRAME_SECONDS
) -> tuple[int, int]:
    """``(start, end)`` sample bounds without the leading/trailing quiet frames.

    A frame is quiet when its mean power is more than ``top_db`` dB below the loudest frame's.
    Works on ``frame_seconds`` frames (the last one may be partial); returns ``(0, 0)`` for silence.
    """
    n = x.shape[0]
    frame = max(1, int(round(frame_seconds * sample_rate)))
    full = n // frame
    power = np.empty(full + (1 if n % frame else 0), dtype=np.float64)
    if full:
        frames = x[: full * frame].reshape(full, frame)
        power[:full] = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frame
    if n % frame:
        tail = x[full * frame :]
        power[full] = float(np.dot(tail, tail)) / tail.shape[0]
    if power.size == 0 or power.max() <= 0:
        return 0, 0
    loud = np.flatnonzero(power >= power.max() * 10.0 ** (-top_db / 10.0))
    return int(loud[0]) * frame, min(n, (int(loud[-1]) + 1) * frame)


def segment_bounds(num_samples: int, max_samples: int) -> list[tuple[int, int]]:
    """Split ``num_samples`` into the fewest equal pieces of at most ``max_samples`` each.

    Equal pieces (rather than max-length pieces plus a remainder) never leave a tiny tail.
    """
    pieces = max(1, math.ceil(num_samples / max_samples))
    edges = [round(i * num_samples / pieces) for i in range(pieces + 1)]
    return [(edges[i], edges[i + 1]) for i in range(pieces)]


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 (rounded to nearest)."""
    return np.rint(x * PCM16_SCALE).astype(np.int16)


def pcm16_to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1] (inverse of :func:`to_pcm16` up to rounding)."""
    return pcm.astype(np.float32) * np.float32(1.0 / PCM16_SCALE)


class Segment(NamedTuple):
    # The field shadows typeshed's tuple.index method, which mypy reports; renaming it would change the API.
    index: int  # type: ignore[assignment]  # 0-based position within the source file
    offset: int  # first sample, counted at the target rate from the start of the source file
    pcm: np.ndarray  # (num_samples,) int16


class Processed(NamedTuple):
    source_rate: int  # Hz of the file as decoded
    source_seconds: float  # duration of the file as decoded
    num_segments: int  # pieces the file was cut into (kept + rejected)
    segments: list[Segment]  # the kept pieces
    rejected: list[tuple[int, str]]  # (segment index, reason) of pieces that were too short
    clipped_samples: int = 0  # samples beyond full scale after resampling, clipped to +-1 (a float file at 3.0)


def clean(x: np.ndarray, rate_in: int, opts: AudioOptions) -> tuple[np.ndarray, int]:
    """Mono waveform at ``rate_in`` -> (float32 at ``opts.sample_rate``: resampled, DC-free, clipped;
    the number of samples the clipping changed).

    Raises ``AudioRejected("silent")`` when the peak is below ``opts.silence_dbfs``.
    """
    y = remove_dc(resample(x, rate_in, opts.sample_rate, opts.quality))
    level = peak_dbfs(y)
    if level < opts.silence_dbfs:
        raise AudioRejected("silent", f"peak {level:.1f} dBFS < {opts.silence_dbfs:.1f} dBFS")
    return clip(y), int(np.count_nonzero(np.abs(y) > 1.0))


def process_file(path: str | Path, opts: AudioOptions) -> Processed:
    """Decode one file and cut it into clean 16-bit segments of at most ``opts.max_seconds``.

    Raises :class:`AudioRejected` when nothing of the file is usable.
    """
    decoded = decode(path)
    y, clipped = clean(to_mono(decoded.samples), decoded.sample_rate, opts)
    start, end = trim_bounds(y, opts.sample_rate, opts.trim_top_db) if opts.trim_silence else (0, y.shape[0])
    min_samples = int(round(opts.min_seconds * opts.sample_rate))
    if end - start < min_samples:
        raise AudioRejected("too-short", f"{(end - start) / opts.sample_rate:.2f} s < {opts.min_seconds:g} s")
    max_samples = max(1, int(opts.max_seconds * opts.sample_rate))
    bounds = segment_bounds(end - start, max_samples)
    kept: list[Segment] = []
    rejected: list[tuple[int, str]] = []
    for i, (a, b) in enumerate(bounds):
        if b - a < min_samples:
            rejected.append((i, f"too-short: segment {(b - a) / opts.sample_rate:.2f} s < {opts.min_seconds:g} s"))
        else:
            kept.append(Segment(i, start + a, to_pcm16(y[start + a : start + b])))
    return Processed(
        decoded.sample_rate, decoded.samples.shape[0] / decoded.sample_rate, len(bounds), kept, rejected, clipped
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
