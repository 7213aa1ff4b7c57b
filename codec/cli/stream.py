"""``telucodec stream-encode`` and ``stream-decode``: live audio to a code stream and back, chunk by chunk.

    arecord -f S16_LE -r 16000 -c 1 | telucodec stream-encode | telucodec stream-decode | aplay -f S16_LE -r 16000

stream-encode reads raw PCM (``--input-format raw``: 16-bit little-endian at ``--input-rate`` Hz, default the
codec's, ``--channels``) or a WAV stream (``wav``: 8-bit unsigned, 16-, 24- or 32-bit integer or 32/64-bit float
PCM, plain or WAVE_FORMAT_EXTENSIBLE; ``auto`` tells raw and WAV apart by the RIFF magic), downmixes,
resamples (soxr, streaming) and writes the code stream (:mod:`codec.formats.code_stream`) one packet per
``--chunk-ms`` of input, flushed at once. stream-decode writes 16-bit PCM (``raw``), 32-bit float PCM
(``f32``) or a WAV stream, at the codec's rate or ``--rate``. Both need a causal model. A stream that ends
early, is damaged or comes from another model stops with one line on stderr and status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import struct
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soxr

from codec.cli.common import (
    DEFAULT_MODEL,
    PRETRAINED_STREAM_MODEL,
    CliError,
    UsageError,
    check_output,
    integer,
    levels_for,
    load_export_file,
    load_model,
    model_named,
    model_options,
    positive_float,
    rate_options,
)
from codec.data.audio import AUDIO_SUFFIXES
from codec.formats.bitstream import MAX_RATE
from codec.formats.code_stream import (
    CodeStreamError,
    StreamHeader,
    end_marker,
    packet,
    read_header,
    read_packets,
)
from codec.runtime.io import atomic_path


class StreamInputError(ValueError):
    """Audio input the stream commands cannot read (bad WAV header, a cut sample)."""


def add_commands(commands) -> None:
    """Register both commands on the ``telucodec`` sub-parsers."""
    enc = commands.add_parser(
        "stream-encode",
        help="live PCM or WAV on stdin -> code stream on stdout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    enc.add_argument("input", nargs="?", default="-", help="audio to read ('-': stdin, the default)")
    enc.add_argument("output", nargs="?", default="-", help="code stream to write ('-': stdout, the default)")
    enc.add_argument("--input-format", choices=("auto", "raw", "wav"), default="auto")
    enc.add_argument("--input-rate", type=integer(1, MAX_RATE), help="raw input's rate (default: the codec's)")
    enc.add_argument("--channels", type=integer(1, 64), default=1, help="raw input's channels (default: 1)")
    enc.add_argument(
        "--chunk-ms",
        type=positive_float(10_000),
        default=80.0,
        help="input read (and a packet written) per step (default: 80 ms)",
    )
    rate_options(enc)
    model_options(enc)
    enc.set_defaults(run=_stream_encode)

    dec = commands.add_parser(
        "stream-decode",
        help="code stream on stdin -> live PCM or WAV on stdout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dec.add_argument("input", nargs="?", default="-", help="code stream to read ('-': stdin, the default)")
    dec.add_argument("output", nargs="?", default="-", help="audio to write ('-': stdout, the default)")
    dec.add_argument(
        "--output-format",
        choices=("raw", "f32", "wav"),
        default="raw",
        help="raw: 16-bit little-endian PCM (default); f32: float32 PCM; wav: a WAV stream",
    )
    dec.add_argument("--rate", type=integer(1, MAX_RATE), help="output rate (default: the codec's)")
    model_options(dec)
    dec.set_defaults(run=_stream_decode)


@contextlib.contextmanager
def _open(name: str, mode: str) -> Iterator[BinaryIO]:
    """stdin / stdout for '-', else the file (an output file appears only when complete)."""
    if name == "-":
        yield sys.stdin.buffer if mode == "r" else sys.stdout.buffer
    elif mode == "r":
        with open(name, "rb") as f:
            yield f
    else:
        with atomic_path(Path(name)) as tmp, open(tmp, "wb") as f:
            yield f


def _check_stream_output(source: str, output: str, what: str, wrong_suffixes: tuple[str, ...]) -> None:
    """A named output must not be the named input, nor carry a suffix that says it holds something else (a code
    stream written into ``talk.wav``); '-' (stdin/stdout) is never checked."""
    if output == "-":
        return
    check_output(Path(output), [] if source == "-" else [Path(source)], (), what)
    if Path(output).suffix.lower() in wrong_suffixes:
        raise UsageError(f"{output}: {what} would be written into a {Path(output).suffix} name")


def _streaming_model(args: argparse.Namespace):
    """The causal model to stream with. When the user names none, the shipped causal codec stands in for a
    default export that is missing or not causal (``make run`` trains a non-causal one), with a note."""
    from codec.model.streaming import is_causal

    model = load_model(args, pretrained=PRETRAINED_STREAM_MODEL)
    if not is_causal(model.codec) and not model_named(args) and PRETRAINED_STREAM_MODEL.is_file():
        print(
            f"note: {DEFAULT_MODEL} is not causal; using the pretrained streaming Telugu codec "
            f"{PRETRAINED_STREAM_MODEL}",
            file=sys.stderr,
        )
        model = load_export_file(PRETRAINED_STREAM_MODEL)
    if not is_causal(model.codec):
        raise CliError(
            f"{args.model or 'the model'}: not causal (model.causal: false): streaming needs a causal model, "
            f"e.g. the shipped {PRETRAINED_STREAM_MODEL.name} or one trained with workflow/recipes/causal-*.yaml"
        )
    return model


# ----------------------------------------------------------------------------------------- encode


# Caps on what a WAV header may claim: channels as --channels allows, rates as --input-rate.
MAX_CHANNELS = 64
MAX_SKIPPED_CHUNK = 1 << 26  # a chunk before the data (LIST, fact, bext...) larger than this is refused
_READ_PIECE = 1 << 16  # the most a header read or a skip asks for at once
_LIVE_SIZES = (0, 0xFFFFFFFF)  # data sizes that live writers put in a header: "until the input ends"
_LIVE_SIZE_FROM = 0x7FFFF000  # arecord (0x7FFFFFFF) and others write a size near 2 GiB for the same
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_*: the tag, then this
_READABLE = {_PCM: (8, 16, 24, 32), _FLOAT: (32, 64)}
_READS = "stream-encode reads 8-bit unsigned, 16-, 24- and 32-bit integer PCM and 32- or 64-bit float"


@dataclasses.dataclass(frozen=True)
class PcmLayout:
    """How the input's samples are laid out: ``float`` (IEEE) or integer PCM of ``bits`` (8: unsigned)."""

    rate: int
    channels: int
    bits: int = 16
    is_float: bool = False
    data_size: int | None = None  # bytes of samples the input declares (whole frames); None: until it ends

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8

    def to_float(self, data: bytes) -> np.ndarray:
        """Whole frames -> float32 ``[n, channels]``, as libsndfile (soundfile) reads them: integers scaled by
        2^-(bits-1) (8-bit ones offset by 128 first), float64 rounded to float32."""
        width = self.bits // 8
        if self.is_float:
            samples = np.frombuffer(data, dtype="<f4" if width == 4 else "<f8").astype(np.float32)
        elif width == 1:
            samples = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128) * np.float32(2.0**-7)
        elif width == 3:  # each sample in the top 3 bytes of an int32, as libsndfile does
            wide = np.zeros((len(data) // 3, 4), dtype=np.uint8)
            wide[:, 1:] = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
            samples = wide.view("<i4")[:, 0].astype(np.float32) * np.float32(2.0**-31)
        else:
            samples = np.frombuffer(data, dtype=f"<i{width}").astype(np.float32) * np.float32(2.0 ** (1 - self.bits))
        return samples.reshape(-1, self.channels)


def _read_up_to(source: BinaryIO, size: int) -> bytes:
    """``size`` bytes, fewer only where the input ends (a pipe hands over what it has: read again)."""
    parts, got = [], 0
    while got < size:
        part = source.read(min(size - got, _READ_PIECE))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _skip(source: BinaryIO, size: int, what: str) -> None:
    """Reads past ``size`` bytes in bounded pieces (a live input cannot seek)."""
    while size > 0:
        part = source.read(min(size, _READ_PIECE))
        if not part:
            raise StreamInputError(f"truncated WAV header: it ends inside {what}")
        size -= len(part)


def _pcm_reader(
    source: BinaryIO, fmt: str, rate: int, channels: int, chunk_ms: float, max_rate: int = MAX_RATE
) -> tuple[int, Iterator[np.ndarray]]:
    """(sample rate, blocks of float32 ``[n, channels]``) of a raw (16-bit) or WAV input, read block by block.
    A WAV header that says something this cannot read, a cut sample and NaN or infinite samples (as soon as
    the block holding them is read) raise :class:`StreamInputError`."""
    head = _read_up_to(source, 4) if fmt in ("auto", "wav") else b""
    wav = fmt == "wav" or (fmt == "auto" and head == b"RIFF")
    layout = _wav_header(source, head, max_rate) if wav else PcmLayout(rate, channels)
    width = layout.frame_bytes
    block = max(1, round(chunk_ms / 1000 * layout.rate)) * width

    def blocks() -> Iterator[np.ndarray]:
        leftover = b"" if wav else head
        remaining = layout.data_size
        frames = 0
        while remaining is None or remaining > 0:
            want = block if remaining is None else min(block, remaining)
            data = leftover + _read_up_to(source, want - len(leftover))
            leftover = b""
            if not data:
                return
            if len(data) % width:
                raise StreamInputError(f"truncated input: it ends inside a sample ({len(data) % width} bytes over)")
            if remaining is not None:
                remaining -= len(data)
            samples = layout.to_float(data)
            if layout.is_float and not np.isfinite(samples).all():
                first = frames + int(np.argmin(np.isfinite(samples).all(axis=1)))
                raise StreamInputError(f"non-finite: NaN or infinite samples (the first at frame {first})")
            frames += samples.shape[0]
            yield samples
            if len(data) < want:  # the input ended
                return

    return layout.rate, blocks()


def _wav_header(source: BinaryIO, head: bytes = b"", max_rate: int = MAX_RATE) -> PcmLayout:
    """Reads a WAV header up to its data chunk (``head``: its first bytes, already read). PCM (8-bit unsigned,
    16-, 24-, 32-bit) and IEEE float (32, 64), plain or WAVE_FORMAT_EXTENSIBLE; other chunks before the data
    are skipped in bounded pieces. Anything else raises :class:`StreamInputError`; no read asks for more
    than 64 KiB."""
    riff = head + _read_up_to(source, 12 - len(head))
    if not riff:
        raise StreamInputError("empty input: no WAV header")
    if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise StreamInputError("not a WAV stream (no RIFF/WAVE header)")
    layout, offset = None, 12
    while True:
        chunk = _read_up_to(source, 8)
        if len(chunk) < 8:
            raise StreamInputError(f"WAV header without a data chunk (the input ends at byte {offset + len(chunk)})")
        name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        label = f"the {name.decode('latin-1')!r} chunk at byte {offset}"
        offset += 8
        if name == b"data":
            if layout is None:
                raise StreamInputError(f"WAV header: a data chunk at byte {offset - 8} before any fmt chunk")
            if size in _LIVE_SIZES or size >= _LIVE_SIZE_FROM:
                return layout
            return dataclasses.replace(layout, data_size=size - size % layout.frame_bytes)
        padded = size + (size & 1)
        if name == b"fmt ":
            if layout is not None:
                raise StreamInputError(f"WAV header: a second fmt chunk at byte {offset - 8}")
            body = _read_up_to(source, min(size, 40))
            if len(body) < min(size, 40):
                raise StreamInputError(f"truncated WAV header: it ends inside {label}")
            layout = _wav_format(body, size, max_rate)
            _skip(source, padded - len(body), label)
        elif size > MAX_SKIPPED_CHUNK:
            raise StreamInputError(f"WAV header: {label} claims {size} bytes (at most {MAX_SKIPPED_CHUNK} skipped)")
        else:
            _skip(source, padded, label)
        offset += padded


def _wav_format(body: bytes, size: int, max_rate: int) -> PcmLayout:
    """The layout a ``fmt `` chunk (its first 40 bytes, ``size`` in all) describes, or StreamInputError."""
    if size < 16:
        raise StreamInputError(f"WAV header: a fmt chunk of {size} bytes (at least 16)")
    tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", body[:16])
    kind = tag
    if tag == _EXTENSIBLE:
        cb_size = struct.unpack("<H", body[16:18])[0] if size >= 18 else 0
        if size < 40 or cb_size < 22:
            raise StreamInputError(
                f"WAV header: a WAVE_FORMAT_EXTENSIBLE fmt chunk of {size} bytes (extension {cb_size}): "
                "at least 40 (22)"
            )
        guid = body[24:40]
        kind = struct.unpack("<H", guid[:2])[0]
        if guid[2:] != _GUID_TAIL:
            raise StreamInputError(
                f"WAV header: WAVE_FORMAT_EXTENSIBLE sub-format {uuid.UUID(bytes_le=guid)}: not PCM or IEEE float"
            )
    if kind not in _READABLE:
        raise StreamInputError(f"WAV format 0x{kind:04x}: not PCM (1) or IEEE float (3); {_READS}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise StreamInputError(f"WAV header: {channels} channels (1..{MAX_CHANNELS})")
    if not 1 <= rate <= max_rate:
        raise StreamInputError(f"WAV header: sample rate {rate} Hz (1..{max_rate})")
    if bits not in _READABLE[kind]:
        raise StreamInputError(f"WAV stream of {bits}-bit {'float' if kind == _FLOAT else 'PCM'} samples: {_READS}")
    if align != channels * bits // 8:
        raise StreamInputError(
            f"WAV header: block align {align} for {channels} channel{'s' if channels > 1 else ''} of {bits} bits "
            f"(must be {channels * bits // 8})"
        )
    return PcmLayout(rate, channels, bits, kind == _FLOAT)


def _stream_encode(args: argparse.Namespace) -> int:
    import torch

    from codec.model.streaming import StreamingEncoder

    model = _streaming_model(args)
    codec = model.codec
    n_q = levels_for(codec, args.kbps, args.levels)
    header = StreamHeader(
        model.model_id_bytes, codec.sample_rate, codec.hop_length, int(codec.quantizer.codebook_size), n_q
    )
    encoder = StreamingEncoder(codec, n_q)
    hop = codec.hop_length
    _check_stream_output(args.input, args.output, "a code stream", AUDIO_SUFFIXES + (".tcq",))
    with _open(args.input, "r") as source, _open(args.output, "w") as sink:
        try:
            rate, blocks = _pcm_reader(
                source, args.input_format, args.input_rate or codec.sample_rate, args.channels, args.chunk_ms
            )
        except StreamInputError as exc:
            raise _cli_error(f"{args.input}: {exc}") from None
        resampler = (
            soxr.ResampleStream(rate, codec.sample_rate, 1, dtype="float32") if rate != codec.sample_rate else None
        )
        sink.write(header.to_bytes())
        sink.flush()
        try:
            for block in blocks:
                mono = block.mean(axis=1, dtype=np.float32)
                if resampler is not None:
                    mono = resampler.resample_chunk(mono)
                _send(sink, encoder.encode(torch.from_numpy(mono)), hop, header)
            if resampler is not None:
                _send(
                    sink,
                    encoder.encode(torch.from_numpy(resampler.resample_chunk(np.zeros(0, np.float32), last=True))),
                    hop,
                    header,
                )
        except StreamInputError as exc:
            raise _cli_error(f"{args.input}: {exc}") from None
        partial = encoder.pending.shape[0]
        _send(sink, encoder.flush(), partial or hop, header)
        sink.write(end_marker())
        sink.flush()
    return 0


def _send(sink: BinaryIO, codes, last: int, header: StreamHeader) -> None:
    for start in range(0, codes.shape[1], 0xFFFF):
        part = codes[:, start : start + 0xFFFF].numpy()
        full = start + part.shape[1] < codes.shape[1]
        sink.write(packet(part, header.hop_length if full else last, header))
    if codes.shape[1]:
        sink.flush()


def _cli_error(message: str) -> Exception:
    return CliError(message)


# ----------------------------------------------------------------------------------------- decode


# The most code frames the streaming decoder is handed at once (1 s at 50 frames/s): what stream-encode writes
# (packets of --chunk-ms, 80 ms by default) is decoded packet by packet up to 1 s packets; a longer packet in
# slices of this size, so memory does not grow with the packet. Measured on a maximal stream (one packet of
# 65,535 frames: 22 minutes of audio) with a shipped-size causal model (recipe causal-handover-la4, random
# weights, 12 levels): peak RSS 0.44 GB (decoded in one call: 2.6 GB and not done when stopped after 3
# minutes); with the 4-channel test model 0.34 GB (5.8 GB in one call).
DECODE_SLICE_FRAMES = 50


class _Sink:
    """Decoded float32 samples out as 16-bit or float PCM, or a WAV stream, resampled when asked."""

    def __init__(self, out: BinaryIO, fmt: str, codec_rate: int, rate: int):
        self.out, self.fmt = out, fmt
        self.resampler = soxr.ResampleStream(codec_rate, rate, 1, dtype="float32") if rate != codec_rate else None
        if fmt == "wav":  # sizes unknown while streaming: the maximum, as arecord writes them
            bits, tag = 16, 1
            out.write(
                b"RIFF"
                + struct.pack("<I", 0xFFFFFFFF)
                + b"WAVEfmt "
                + struct.pack("<IHHIIHH", 16, tag, 1, rate, rate * bits // 8, bits // 8, bits)
                + b"data"
                + struct.pack("<I", 0xFFFFFFFF)
            )

    def write(self, samples: np.ndarray, last: bool = False) -> None:
        if self.resampler is not None:
            samples = self.resampler.resample_chunk(samples, last=last)
        if samples.size:
            if self.fmt == "f32":
                self.out.write(samples.astype("<f4").tobytes())
            else:
                self.out.write((np.clip(samples, -1.0, 32767 / 32768) * 32768).round().astype("<i2").tobytes())
        self.out.flush()


def _stream_decode(args: argparse.Namespace) -> int:
    import torch

    from codec.model.streaming import StreamingDecoder

    _check_stream_output(args.input, args.output, "audio", (".tcq", ".tcs"))
    model = _streaming_model(args)
    codec = model.codec
    with _open(args.input, "r") as source, _open(args.output, "w") as out:
        try:
            header = read_header(source)
        except CodeStreamError as exc:
            raise CliError(f"{args.input}: {exc}") from None
        want = (model.model_id_bytes, codec.sample_rate, codec.hop_length, int(codec.quantizer.codebook_size))
        got = (header.model_id, header.sample_rate, header.hop_length, header.codebook_size)
        if got != want or header.num_levels > codec.num_levels:
            raise CliError(
                f"{args.input}: the stream was made by model {header.model_id.hex()} with {got[1:]}; "
                f"the model given is {model.model_id_bytes.hex()} with {want[1:]} (pass it with --model)"
            )
        decoder = StreamingDecoder(codec)
        sink = _Sink(out, args.output_format, codec.sample_rate, args.rate or codec.sample_rate)
        hop, limit, written = codec.hop_length, 0, 0
        try:
            for codes, last in read_packets(source, header):
                frames = codes.shape[1]
                # A packet may hold 65,535 frames (22 minutes at 16 kHz): decoded a slice at a time, each
                # slice's audio written before the next, memory stays flat whatever the packet's size.
                for start in range(0, frames, DECODE_SLICE_FRAMES):
                    part = np.ascontiguousarray(codes[:, start : start + DECODE_SLICE_FRAMES])
                    end = start + part.shape[1]
                    # The stream's length so far: the packet's last frame holds `last` samples.
                    limit = (decoder.frames_in + part.shape[1]) * hop - (hop - last if end == frames else 0)
                    audio = decoder.decode(torch.from_numpy(part)).numpy()
                    keep = audio[: max(0, limit - written)]
                    sink.write(keep)
                    written += keep.shape[0]
        except CodeStreamError as exc:
            raise CliError(f"{args.input}: {exc} ({decoder.frames_in} frames decoded)") from None
        tail = decoder.flush().numpy()[: max(0, limit - written)]
        sink.write(tail, last=True)
    return 0
