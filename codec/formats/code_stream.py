"""The live code stream of ``telucodec stream-encode`` / ``stream-decode``: a header, then packets as frames
are ready, then an end marker. Little-endian; every part carries a CRC-32, so a damaged or cut stream is
noticed where it breaks (the ``.tcq`` file's single trailing CRC needs the whole file first).

Header (44 bytes): magic ``TCS1`` (4), version u16 (1), flags u16 (0), model id (16: the first 16 bytes of
the export's sha256), sample rate u32, hop u32, codebook size u32, levels u8, codebook bits u8, reserved u16
(0), CRC-32 of the 40 bytes before it (u32).

Packet: frames ``n`` u16 (1..65535), samples of its last frame u16 (1..hop: the stream's end may cut a frame),
the ``n x levels`` codes frame-major at ``bits`` each, most significant bit first, zero-padded to a byte (as
in the ``.tcq`` raw payload), CRC-32 of the packet's bytes before it (u32). End marker: ``n = 0`` and samples
``0``, then its CRC-32; nothing may follow it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from codec.formats.bitstream import BitstreamError, codebook_bits, pack_codes, unpack_codes

MAGIC = b"TCS1"
VERSION = 1
_HEADER = struct.Struct("<4sHH16sIIIBBH")
_PACKET = struct.Struct("<HH")
_CRC = struct.Struct("<I")
MAX_PACKET_FRAMES = 0xFFFF


class CodeStreamError(BitstreamError):
    """A code stream that is not one, was made for another model, is damaged or ends before its end marker."""


@dataclass(frozen=True)
class StreamHeader:
    model_id: bytes  # 16 bytes
    sample_rate: int
    hop_length: int
    codebook_size: int
    num_levels: int

    @property
    def bits(self) -> int:
        return codebook_bits(self.codebook_size)

    def to_bytes(self) -> bytes:
        body = _HEADER.pack(
            MAGIC,
            VERSION,
            0,
            self.model_id,
            self.sample_rate,
            self.hop_length,
            self.codebook_size,
            self.num_levels,
            self.bits,
            0,
        )
        return body + _CRC.pack(zlib.crc32(body))


def packet(codes: np.ndarray, last_frame_samples: int, header: StreamHeader) -> bytes:
    """One packet of ``codes [levels, n]`` whose last frame holds ``last_frame_samples`` samples."""
    levels, frames = codes.shape
    if levels != header.num_levels or not 1 <= frames <= MAX_PACKET_FRAMES:
        raise ValueError(
            f"a packet holds 1..{MAX_PACKET_FRAMES} frames of {header.num_levels} levels, got {codes.shape}"
        )
    if not 1 <= last_frame_samples <= header.hop_length:
        raise ValueError(f"the last frame holds 1..{header.hop_length} samples, got {last_frame_samples}")
    body = _PACKET.pack(frames, last_frame_samples) + pack_codes(codes, header.bits)
    return body + _CRC.pack(zlib.crc32(body))


def end_marker() -> bytes:
    body = _PACKET.pack(0, 0)
    return body + _CRC.pack(zlib.crc32(body))


def _read_exactly(source: BinaryIO, size: int, what: str) -> bytes:
    data = b""
    while len(data) < size:
        chunk = source.read(size - len(data))
        if not chunk:
            raise CodeStreamError(f"truncated code stream: it ends inside {what}")
        data += chunk
    return data


def _check_crc(body: bytes, crc: bytes, what: str) -> None:
    if zlib.crc32(body) != _CRC.unpack(crc)[0]:
        raise CodeStreamError(f"corrupted code stream: CRC mismatch in {what}")


def read_header(source: BinaryIO) -> StreamHeader:
    first = source.read(_HEADER.size)
    if not first:
        raise CodeStreamError("empty input: no code stream")
    body = first + (
        _read_exactly(source, _HEADER.size - len(first), "the header") if len(first) < _HEADER.size else b""
    )
    magic, version, flags, model_id, rate, hop, size, levels, bits, _ = _HEADER.unpack(body)
    if magic != MAGIC:
        raise CodeStreamError(f"not a TeluCodec code stream (magic {magic!r}, expected {MAGIC!r})")
    _check_crc(body, _read_exactly(source, _CRC.size, "the header"), "the header")
    if version != VERSION or flags:
        raise CodeStreamError(f"code stream version {version} (flags {flags}), this build reads {VERSION}")
    header = StreamHeader(model_id, rate, hop, size, levels)
    if not (rate and hop and size >= 2 and 1 <= levels <= 64 and bits == header.bits):
        raise CodeStreamError(f"code stream header out of range: {header}")
    return header


def read_packets(source: BinaryIO, header: StreamHeader) -> Iterator[tuple[np.ndarray, int]]:
    """``(codes [levels, n], samples of the last frame)`` per packet, until the end marker; anything after it,
    or an end of input before it, is an error."""
    frames_read = 0
    while True:
        head = _read_exactly(source, _PACKET.size, f"a packet header (after {frames_read} frames)")
        frames, last = _PACKET.unpack(head)
        if frames == 0:
            _check_crc(head, _read_exactly(source, _CRC.size, "the end marker"), "the end marker")
            if last or source.read(1):
                raise CodeStreamError("corrupted code stream: data after the end marker")
            return
        size = (frames * header.num_levels * header.bits + 7) // 8
        payload = _read_exactly(source, size, f"the packet after {frames_read} frames")
        _check_crc(
            head + payload, _read_exactly(source, _CRC.size, "a packet"), f"the packet after {frames_read} frames"
        )
        if not 1 <= last <= header.hop_length:
            raise CodeStreamError(f"corrupted code stream: a last frame of {last} samples (hop {header.hop_length})")
        codes = unpack_codes(payload, header.num_levels, frames, header.bits)
        if codes.max() >= header.codebook_size:
            raise CodeStreamError("corrupted code stream: a code outside the codebook")
        frames_read += frames
        yield codes, last
