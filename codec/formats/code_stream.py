"""The live code stream of ``telucodec stream-encode`` / ``stream-decode``: a header, then packets as frames
are ready, then an end marker. Little-endian; every part carries a CRC-32, so a damaged or cut stream is
noticed where it breaks (the ``.tcq`` file's single trailing CRC needs the whole file first).

Header (44 bytes): magic ``TCS1`` (4), version u16 (1), flags u16 (0), model id (16: the first 16 bytes of
the export's sha256), sample rate u32, hop u32, codebook size u32, levels u8, codebook bits u8, reserved u16
(0), CRC-32 of the 40 bytes before it (u32). A reader refuses a sample rate outside 1..1,000,000, a hop outside
1..65535, a codebook outside 2..65536 (1..16 bits), levels outside 1..64 and bits that are not the codebook's.

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

from codec.formats.bitstream import (
    MAX_CODEBOOK_BITS,
    MAX_LEVELS,
    MAX_RATE,
    BitstreamError,
    codebook_bits,
    pack_codes,
    unpack_codes,
)

MAGIC = b"TCS1"
VERSION = 1
_HEADER = struct.Struct("<4sHH16sIIIBBH")
_PACKET = struct.Struct("<HH")
_CRC = struct.Struct("<I")
MAX_PACKET_FRAMES = 0xFFFF
MAX_HOP = 0xFFFF  # a packet's last frame holds 1..hop samples in a u16


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
    parts, got = [], 0
    while got < size:
        chunk = source.read(size - got)
        if not chunk:
            raise CodeStreamError(f"truncated code stream: it ends inside {what}")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _check_crc(body: bytes, crc: bytes, what: str) -> None:
    if zlib.crc32(body) != _CRC.unpack(crc)[0]:
        raise CodeStreamError(f"corrupted code stream: CRC mismatch in {what}")


def _out_of_range(header: StreamHeader, bits: int) -> str | None:
    """What is wrong with a header's fields, in words (the first field out of range), or None."""
    for name, value, low, high in (
        ("sample_rate", header.sample_rate, 1, MAX_RATE),
        ("hop_length", header.hop_length, 1, MAX_HOP),
        ("codebook_size", header.codebook_size, 2, 1 << MAX_CODEBOOK_BITS),
        ("num_levels", header.num_levels, 1, MAX_LEVELS),
    ):
        if not low <= value <= high:
            return f"{name} {value} out of range {low}..{high}"
    if bits != header.bits:
        return f"codebook_bits {bits} does not match codebook_size {header.codebook_size} ({header.bits} bits)"
    return None


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
    if version != VERSION:
        raise CodeStreamError(f"code stream version {version}: this build reads version {VERSION}")
    if flags:
        raise CodeStreamError(f"code stream flags 0x{flags:04x}: version {VERSION} defines none (must be 0)")
    header = StreamHeader(model_id, rate, hop, size, levels)
    problem = _out_of_range(header, bits)
    if problem:
        raise CodeStreamError(f"code stream header out of range: {problem}")
    return header


def read_packets(source: BinaryIO, header: StreamHeader) -> Iterator[tuple[np.ndarray, int]]:
    """``(codes [levels, n], samples of the last frame)`` per packet, until the end marker; anything after it,
    or an end of input before it, is an error. No read is larger than one packet (at most 65,535 frames of
    ``levels x bits``: 8 MiB at the header's caps), so memory stays bounded whatever the stream claims."""
    frames_read, offset = 0, _HEADER.size + _CRC.size
    while True:
        first = source.read(_PACKET.size)
        if not first:
            raise CodeStreamError(
                f"truncated code stream: it ends after {frames_read} frames (byte {offset}) without its end marker"
            )
        where = f"the packet at byte {offset} (after {frames_read} frames)"
        head = first + (
            _read_exactly(source, _PACKET.size - len(first), f"the header of {where}")
            if len(first) < _PACKET.size
            else b""
        )
        frames, last = _PACKET.unpack(head)
        if frames == 0:
            marker = f"the end marker at byte {offset}"
            _check_crc(head, _read_exactly(source, _CRC.size, marker), marker)
            if last:
                raise CodeStreamError(
                    f"corrupted code stream: at byte {offset}: 0 frames with {last} samples in its last frame, "
                    f"neither a packet (1..{MAX_PACKET_FRAMES} frames) nor the end marker (0 frames, 0 samples)"
                )
            extra = source.read(16)
            if extra:
                more = "" if len(extra) < 16 else " or more"
                raise CodeStreamError(
                    f"corrupted code stream: data after the end marker: {len(extra)} bytes{more} "
                    f"({extra[:8].hex()}{'...' if len(extra) > 8 else ''}) at byte {offset + _PACKET.size + _CRC.size}"
                )
            return
        size = (frames * header.num_levels * header.bits + 7) // 8
        payload = _read_exactly(source, size, where)
        _check_crc(head + payload, _read_exactly(source, _CRC.size, where), where)
        if not 1 <= last <= header.hop_length:
            raise CodeStreamError(
                f"corrupted code stream: {where}: a last frame of {last} samples, out of range 1..{header.hop_length}"
            )
        try:
            codes = unpack_codes(payload, header.num_levels, frames, header.bits)
        except BitstreamError as exc:
            raise CodeStreamError(f"corrupted code stream: {where}: {exc}") from None
        if codes.max() >= header.codebook_size:
            raise CodeStreamError(
                f"corrupted code stream: code {codes.max()} outside the codebook of {header.codebook_size} in {where}"
            )
        frames_read += frames
        offset += _PACKET.size + size + _CRC.size
        yield codes, last
