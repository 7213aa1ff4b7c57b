"""``telucodec stream-encode`` and ``stream-decode``: live audio to a code stream and back, chunk by chunk.

    arecord -f S16_LE -r 16000 -c 1 | telucodec stream-encode | telucodec stream-decode | aplay -f S16_LE -r 16000

stream-encode reads raw PCM (``--input-format raw``: 16-bit little-endian at ``--input-rate`` Hz, default the
codec's, ``--channels``) or a WAV stream (``wav``; ``auto`` tells them apart by the RIFF magic), downmixes,
resamples (soxr, streaming) and writes the code stream (:mod:`codec.formats.code_stream`) one packet per
``--chunk-ms`` of input, flushed at once. stream-decode writes 16-bit PCM (``raw``), 32-bit float PCM
(``f32``) or a WAV stream, at the codec's rate or ``--rate``. Both need a causal model. A stream that ends
early, is damaged or comes from another model stops with one line on stderr and status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soxr

from codec.cli.common import (
    DEFAULT_MODEL,
    PRETRAINED_STREAM_MODEL,
    CliError,
    integer,
    levels_for,
    load_export_file,
    load_model,
    model_named,
    model_options,
    positive_float,
)
from codec.formats.code_stream import (
    CodeStreamError,
    StreamHeader,
    end_marker,
    packet,
    read_header,
    read_packets,
)
from codec.runtime.io import atomic_path

MAX_RATE = 768_000


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
    rate = enc.add_mutually_exclusive_group()
    rate.add_argument("--kbps", type=positive_float(float("inf")), help="the most levels that fit (default: all)")
    rate.add_argument("--levels", type=integer(1, 1 << 16), help="levels to send (default: all)")
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


def _pcm_reader(
    source: BinaryIO, fmt: str, rate: int, channels: int, chunk_ms: float
) -> tuple[int, Iterator[np.ndarray]]:
    """(sample rate, blocks of float32 ``[n, channels]``) of a raw or WAV input."""
    head = source.read(4) if fmt in ("auto", "wav") else b""
    sample_format = "<i2"
    if fmt == "wav" or (fmt == "auto" and head == b"RIFF"):
        rate, channels, sample_format = _wav_header(source, head)
    width = np.dtype(sample_format).itemsize * channels
    block = max(1, round(chunk_ms / 1000 * rate)) * width

    def blocks() -> Iterator[np.ndarray]:
        leftover = head if fmt != "wav" and head != b"RIFF" else b""
        while True:
            data = leftover + source.read(block - len(leftover))
            leftover = b""
            if not data:
                return
            while len(data) < block:  # a pipe gives what it has: fill the block unless the input ended
                more = source.read(block - len(data))
                if not more:
                    break
                data += more
            if len(data) % width:
                raise StreamInputError(f"truncated input: it ends inside a sample ({len(data) % width} bytes over)")
            samples = np.frombuffer(data, dtype=sample_format).reshape(-1, channels)
            yield samples.astype(np.float32) / (32768.0 if sample_format == "<i2" else 1.0)

    return rate, blocks()


def _wav_header(source: BinaryIO, head: bytes) -> tuple[int, int, str]:
    """Reads a WAV header up to its data chunk: (rate, channels, numpy sample format); 16-bit PCM or float32."""
    riff = head + source.read(12 - len(head))
    if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise StreamInputError("not a WAV stream (no RIFF/WAVE header)")
    fmt_info = None
    while True:
        chunk = source.read(8)
        if len(chunk) < 8:
            raise StreamInputError("truncated WAV header: no data chunk")
        name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if name == b"data":
            break
        body = source.read(size + (size & 1))
        if len(body) < size:
            raise StreamInputError("truncated WAV header")
        if name == b"fmt ":
            fmt_info = struct.unpack("<HHIIHH", body[:16])
    if fmt_info is None:
        raise StreamInputError("WAV stream without a fmt chunk")
    tag, channels, rate, _, _, bits = fmt_info
    if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the sub-format decides, assume PCM / float by the width
        tag = 3 if bits == 32 else 1
    if (tag, bits) == (1, 16):
        return rate, channels, "<i2"
    if (tag, bits) == (3, 32):
        return rate, channels, "<f4"
    raise StreamInputError(f"WAV stream of format {tag} with {bits}-bit samples: use 16-bit PCM or 32-bit float")


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
    with _open(args.input, "r") as source, _open(args.output, "w") as sink:
        rate, blocks = _pcm_reader(
            source, args.input_format, args.input_rate or codec.sample_rate, args.channels, args.chunk_ms
        )
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
                limit = (decoder.frames_in + codes.shape[1] - 1) * hop + last  # the stream's length so far
                audio = decoder.decode(torch.from_numpy(codes)).numpy()
                keep = audio[: max(0, limit - written)]
                sink.write(keep)
                written += keep.shape[0]
        except CodeStreamError as exc:
            raise CliError(f"{args.input}: {exc} ({decoder.frames_in} frames decoded)") from None
        tail = decoder.flush().numpy()[: max(0, limit - written)]
        sink.write(tail, last=True)
    return 0
