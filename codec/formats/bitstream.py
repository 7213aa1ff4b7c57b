"""The ``.tcq`` bitstream: a 64-byte header, the codes, and a CRC32 trailer.

Layout (all integers little-endian)::

    offset size field
         0    4 magic           b"TCQ1"
         4    2 version         1
         6    2 flags           bit 0: payload entropy-coded; other bits must be 0
         8   16 model_id        first 16 bytes of the model's content hash (sha256)
        24    4 sample_rate     Hz of the codec (and of the decoded audio)
        28    4 hop_length      samples per code frame: frame rate = sample_rate / hop_length exactly
        32    4 source_rate     Hz of the input file before resampling (informative)
        36    4 codebook_size   K entries per level
        40    1 num_levels      n_q levels sent per frame
        41    1 codebook_bits   ceil(log2 K): bits per code in the raw payload
        42    2 reserved        0
        44    4 num_frames      F code frames
        48    8 num_samples     original length at sample_rate; ceil(num_samples / hop_length) == F
        56    8 payload_length  bytes of payload
        64    P payload
      64+P    4 crc32           zlib CRC-32 of bytes [0, 64 + P)

Raw payload: the ``F * n_q`` codes in frame-major order (frame 0 levels 0..n_q-1, frame 1 ...),
each ``codebook_bits`` bits, most significant bit first, zero-padded to a whole byte.
Entropy-coded payload: one range-coder stream (``constriction``'s ``RangeEncoder``, 32-bit words,
little-endian) of the codes in level-major order, level ``l`` coded with the model's categorical
distribution ``probabilities[l]``.

Everything read from a file is untrusted: :func:`parse_bitstream` checks every size against the
data length and fixed caps before anything is allocated, and every failure is a
:class:`BitstreamError`. Entropy-coded streams are bounded too: the model distributions give no
symbol more than :data:`MAX_SYMBOL_PROBABILITY`, so each code costs over one bit and a payload of
``P`` bytes cannot claim more than ``8 * P + 64`` codes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from codec.config.quantizer import code_bits

MAGIC = b"TCQ1"
VERSION = 1
FLAG_ENTROPY = 1
KNOWN_FLAGS = FLAG_ENTROPY
HEADER = struct.Struct("<4sHH16sIIIIBBHIQQ")
CRC = struct.Struct("<I")
MODEL_ID_BYTES = 16

# Caps on header fields: far beyond any real codec, small enough that nothing absurd is allocated.
MAX_LEVELS = 64
MAX_CODEBOOK_BITS = 16
MAX_RATE = 768_000  # Hz: the highest audio rate the bitstream, the live stream and the CLI read or write
MAX_HOP = 1 << 20  # samples
MAX_CODES = 1 << 27  # F * n_q: ~62 hours at 12 levels x 50 frames/s; decoded codes take at most 1 GiB
MAX_FILE_BYTES = 1 << 28  # 256 MiB
# Entropy coding: no symbol more likely than this, so every code costs more than one bit.
MAX_SYMBOL_PROBABILITY = 0.49
ENTROPY_SLACK_CODES = 64  # allowance for the coder's final word


class BitstreamError(ValueError):
    """A bitstream is truncated, corrupted, of another version or model, or otherwise unusable."""


@dataclass(frozen=True)
class Header:
    """The fixed header of a ``.tcq`` file (see the module docstring for the layout)."""

    model_id: bytes
    sample_rate: int
    hop_length: int
    source_rate: int
    codebook_size: int
    num_levels: int
    num_frames: int
    num_samples: int
    payload_length: int
    flags: int = 0
    version: int = VERSION

    @property
    def entropy_coded(self) -> bool:
        return bool(self.flags & FLAG_ENTROPY)

    @property
    def codebook_bits(self) -> int:
        return codebook_bits(self.codebook_size)

    @property
    def frame_rate(self) -> Fraction:
        """Code frames per second, exact."""
        return Fraction(self.sample_rate, self.hop_length)

    @property
    def duration_seconds(self) -> float:
        return self.num_samples / self.sample_rate

    @property
    def nominal_kbps(self) -> float:
        """kbit/s of the raw codes: ``n_q * codebook_bits * frame_rate / 1000``."""
        return self.num_levels * self.codebook_bits * float(self.frame_rate) / 1000.0

    @property
    def payload_kbps(self) -> float:
        """kbit/s actually spent on the payload over the audio's duration."""
        return 8.0 * self.payload_length / self.duration_seconds / 1000.0

    @property
    def file_bytes(self) -> int:
        return HEADER.size + self.payload_length + CRC.size

    @property
    def file_kbps(self) -> float:
        """kbit/s of the whole file (header and CRC included)."""
        return 8.0 * self.file_bytes / self.duration_seconds / 1000.0

    def pack(self) -> bytes:
        return HEADER.pack(
            MAGIC,
            self.version,
            self.flags,
            self.model_id,
            self.sample_rate,
            self.hop_length,
            self.source_rate,
            self.codebook_size,
            self.num_levels,
            self.codebook_bits,
            0,
            self.num_frames,
            self.num_samples,
            self.payload_length,
        )


@dataclass(frozen=True)
class Bitstream:
    """A parsed, validated ``.tcq`` file: its header and payload (CRC already checked)."""

    header: Header
    payload: bytes

    def codes(self, probabilities: np.ndarray | None = None) -> np.ndarray:
        """Codes ``[n_q, F]`` int64 in ``[0, K)``; entropy-coded payloads need the model's
        ``probabilities [>= n_q, K]`` (:attr:`ExportedCodec.probabilities`)."""
        h = self.header
        if not h.entropy_coded:
            codes = unpack_codes(self.payload, h.num_levels, h.num_frames, h.codebook_bits)
            if int(codes.max()) >= h.codebook_size:
                raise BitstreamError(f"raw payload holds code {int(codes.max())} >= codebook size {h.codebook_size}")
            return codes
        if probabilities is None:
            raise BitstreamError("the payload is entropy-coded: decoding it needs the model's code distributions")
        return entropy_decode(self.payload, h.num_levels, h.num_frames, h.codebook_size, probabilities)


codebook_bits = code_bits  # bits per raw code, ceil(log2 K): codec.config.quantizer.code_bits


# ------------------------------------------------------------------------------------ raw packing


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Codes ``[n_q, F]`` (integers in ``[0, 2**bits)``) -> frame-major MSB-first bit string, zero-padded."""
    if not 1 <= bits <= MAX_CODEBOOK_BITS:
        raise ValueError(f"bits must be in [1, {MAX_CODEBOOK_BITS}], got {bits}")
    flat = np.ascontiguousarray(np.asarray(codes).T).reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() >= 1 << bits):
        raise ValueError(f"codes must lie in [0, {1 << bits}) to be packed in {bits} bits")
    # Each code as 16 big-endian bits, then keep the low `bits` columns: one vectorised pass.
    as_bits = np.unpackbits(flat.astype(">u2").view(np.uint8).reshape(-1, 2), axis=1)[:, 16 - bits :]
    return np.packbits(as_bits.reshape(-1)).tobytes()


def unpack_codes(payload: bytes, num_levels: int, num_frames: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``[num_levels, num_frames]`` int64. Checks length and zero padding."""
    count = num_levels * num_frames
    expected = (count * bits + 7) // 8
    if len(payload) != expected:
        raise BitstreamError(f"raw payload has {len(payload)} bytes, {count} codes of {bits} bits need {expected}")
    data = np.frombuffer(payload, dtype=np.uint8)
    tail_bits = count * bits % 8
    if tail_bits and data[-1] & ((1 << (8 - tail_bits)) - 1):
        raise BitstreamError("raw payload: padding bits after the last code are not zero")
    flat = np.empty(count, dtype=np.int64)
    # Blocks of a multiple of 8 codes start on byte boundaries and bound the temporaries (16 bytes a code).
    block = 1 << 20
    for start in range(0, count, block):
        n = min(block, count - start)
        first = start * bits // 8
        chunk_bits = np.unpackbits(data[first : first + (n * bits + 7) // 8], count=n * bits).reshape(n, bits)
        wide = np.zeros((n, 16), dtype=np.uint8)
        wide[:, 16 - bits :] = chunk_bits
        flat[start : start + n] = np.packbits(wide, axis=1).view(">u2").reshape(n)
    return flat.reshape(num_frames, num_levels).T.copy()


# ------------------------------------------------------------------------------- entropy coding


def check_distributions(probabilities: np.ndarray, num_levels: int, codebook_size: int) -> np.ndarray:
    """Validate per-level code distributions ``[>= num_levels, K]``; returns them as float64.

    Every probability must be finite and > 0, rows must sum to 1 and none may exceed
    :data:`MAX_SYMBOL_PROBABILITY` (what bounds the decoded size of an entropy-coded payload).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < num_levels or p.shape[1] != codebook_size:
        raise BitstreamError(
            f"code distributions of shape {p.shape} do not cover {num_levels} levels of {codebook_size} codes"
        )
    p = p[:num_levels]
    if not np.isfinite(p).all() or (p <= 0).any():
        raise BitstreamError("code distributions must be finite and positive")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise BitstreamError("code distributions must sum to 1 per level")
    if p.max() > MAX_SYMBOL_PROBABILITY + 1e-6:
        raise BitstreamError(f"a code probability {p.max():.3f} exceeds {MAX_SYMBOL_PROBABILITY}")
    return p


def _constriction():
    # Imported on use: raw streams need no coder. Its submodules are attributes, not importable modules.
    import constriction

    return constriction.stream


def _categorical(p: np.ndarray):
    return _constriction().model.Categorical(p, perfect=False)


def entropy_encode(codes: np.ndarray, probabilities: np.ndarray) -> bytes:
    """Range-code ``codes [n_q, F]`` level by level with ``probabilities [>= n_q, K]``."""
    codes = np.asarray(codes)
    p = check_distributions(probabilities, codes.shape[0], np.shape(probabilities)[-1])
    if codes.size and (codes.min() < 0 or codes.max() >= p.shape[1]):
        raise ValueError(f"codes must lie in [0, {p.shape[1]})")
    encoder = _constriction().queue.RangeEncoder()
    for level in range(codes.shape[0]):
        encoder.encode(np.ascontiguousarray(codes[level], dtype=np.int32), _categorical(p[level]))
    return encoder.get_compressed().astype("<u4").tobytes()


def entropy_decode(
    payload: bytes, num_levels: int, num_frames: int, codebook_size: int, probabilities: np.ndarray
) -> np.ndarray:
    """Inverse of :func:`entropy_encode`: ``[num_levels, num_frames]`` int64."""
    p = check_distributions(probabilities, num_levels, codebook_size)
    if len(payload) % 4:
        raise BitstreamError(f"entropy-coded payload of {len(payload)} bytes is not whole 32-bit words")
    if num_levels * num_frames > 8 * len(payload) + ENTROPY_SLACK_CODES:
        raise BitstreamError(f"{num_levels * num_frames} codes cannot fit in {len(payload)} entropy-coded bytes")
    decoder = _constriction().queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    codes = np.empty((num_levels, num_frames), dtype=np.int64)
    try:
        for level in range(num_levels):
            codes[level] = decoder.decode(_categorical(p[level]), num_frames)
    except Exception as exc:  # constriction signals invalid data with AssertionError/ValueError
        raise BitstreamError(f"entropy-coded payload is invalid for this model's code distributions ({exc})") from None
    return codes


# ------------------------------------------------------------------------------ whole bitstream


def build_bitstream(
    codes: np.ndarray,
    *,
    model_id: bytes,
    sample_rate: int,
    hop_length: int,
    codebook_size: int,
    num_samples: int,
    source_rate: int,
    probabilities: np.ndarray | None = None,
) -> bytes:
    """Serialise codes ``[n_q, F]`` into a ``.tcq`` file; entropy-coded when ``probabilities`` is given.

    ``num_samples``: the audio's length at ``sample_rate`` (``ceil(num_samples / hop_length) == F``).
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.size == 0:
        raise ValueError(f"expected codes [n_q, F] with n_q, F >= 1, got shape {codes.shape}")
    if probabilities is None:
        payload, flags = pack_codes(codes, codebook_bits(codebook_size)), 0
    else:
        payload, flags = entropy_encode(codes, probabilities), FLAG_ENTROPY
    header = Header(
        model_id=bytes(model_id[:MODEL_ID_BYTES]),
        sample_rate=sample_rate,
        hop_length=hop_length,
        source_rate=source_rate,
        codebook_size=codebook_size,
        num_levels=codes.shape[0],
        num_frames=codes.shape[1],
        num_samples=num_samples,
        payload_length=len(payload),
        flags=flags,
    )
    _check_fields(header)  # the writer obeys the rules the reader enforces
    head = header.pack()
    return head + payload + CRC.pack(zlib.crc32(payload, zlib.crc32(head)))


def parse_bitstream(data: bytes) -> Bitstream:
    """Validate a whole ``.tcq`` file held in memory; :class:`BitstreamError` says what is wrong."""
    data = bytes(data)
    minimum = HEADER.size + CRC.size
    if not data:
        raise BitstreamError("empty file")
    if data[:4] != MAGIC[: len(data)]:
        raise BitstreamError(f"not a TeluCodec bitstream (starts with {data[:4]!r}, expected {MAGIC!r})")
    if len(data) < minimum:
        raise BitstreamError(f"truncated: {len(data)} bytes, a .tcq file has at least {minimum}")
    (
        _,
        version,
        flags,
        model_id,
        sample_rate,
        hop_length,
        source_rate,
        codebook_size,
        num_levels,
        bits,
        reserved,
        num_frames,
        num_samples,
        payload_length,
    ) = HEADER.unpack_from(data)
    if version != VERSION:
        raise BitstreamError(f"unsupported format version {version} (this build reads version {VERSION})")
    expected = HEADER.size + payload_length + CRC.size
    if len(data) < expected:
        raise BitstreamError(f"truncated: {len(data)} bytes, the header announces {expected}")
    if len(data) > expected:
        raise BitstreamError(f"{len(data) - expected} unexpected bytes after the end of the stream")
    (stored_crc,) = CRC.unpack_from(data, expected - CRC.size)
    if zlib.crc32(memoryview(data)[: expected - CRC.size]) != stored_crc:
        raise BitstreamError("CRC mismatch: the file is corrupted")
    if reserved:
        raise BitstreamError(f"reserved header field is {reserved}, expected 0")
    header = Header(
        model_id=model_id,
        sample_rate=sample_rate,
        hop_length=hop_length,
        source_rate=source_rate,
        codebook_size=codebook_size,
        num_levels=num_levels,
        num_frames=num_frames,
        num_samples=num_samples,
        payload_length=payload_length,
        flags=flags,
        version=version,
    )
    _check_fields(header)
    if bits != header.codebook_bits:
        raise BitstreamError(f"codebook_bits {bits} does not match a codebook of {codebook_size} entries")
    return Bitstream(header, data[HEADER.size : HEADER.size + payload_length])


def read_bitstream(path: str | Path) -> Bitstream:
    """Read and validate a ``.tcq`` file (size checked before reading)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise BitstreamError(f"{path}: not a file")
        if size > MAX_FILE_BYTES:
            raise BitstreamError(
                f"{path}: {size} bytes is larger than any .tcq file this build reads ({MAX_FILE_BYTES} bytes)"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise BitstreamError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return parse_bitstream(data)
    except BitstreamError as exc:
        raise BitstreamError(f"{path}: {exc}") from None


def _check_fields(h: Header) -> None:
    """Header field ranges and the consistency of sizes, before any payload is decoded."""
    # In this order: each check may rely on the ones before it (no division by a zero hop).
    _require(h.flags & ~KNOWN_FLAGS == 0, f"unknown flags 0x{h.flags:04x}")
    _require(len(h.model_id) == MODEL_ID_BYTES, f"model_id must be {MODEL_ID_BYTES} bytes")
    _require(1 <= h.sample_rate <= MAX_RATE, f"sample_rate {h.sample_rate} out of [1, {MAX_RATE}]")
    _require(1 <= h.hop_length <= MAX_HOP, f"hop_length {h.hop_length} out of [1, {MAX_HOP}]")
    _require(1 <= h.source_rate <= MAX_RATE, f"source_rate {h.source_rate} out of [1, {MAX_RATE}]")
    _require(
        2 <= h.codebook_size <= 1 << MAX_CODEBOOK_BITS,
        f"codebook_size {h.codebook_size} out of [2, {1 << MAX_CODEBOOK_BITS}]",
    )
    _require(1 <= h.num_levels <= MAX_LEVELS, f"num_levels {h.num_levels} out of [1, {MAX_LEVELS}]")
    _require(h.num_frames >= 1, "no code frames")
    _require(h.num_levels * h.num_frames <= MAX_CODES, f"{h.num_levels} x {h.num_frames} codes exceed {MAX_CODES}")
    _require(
        h.num_samples >= 1 and -(-h.num_samples // h.hop_length) == h.num_frames,
        f"num_samples {h.num_samples} does not span {h.num_frames} frames of {h.hop_length} samples",
    )
    count = h.num_levels * h.num_frames
    if h.entropy_coded:
        if h.payload_length % 4:
            raise BitstreamError(f"entropy-coded payload of {h.payload_length} bytes is not whole 32-bit words")
        if count > 8 * h.payload_length + ENTROPY_SLACK_CODES:
            raise BitstreamError(f"{count} codes cannot fit in {h.payload_length} entropy-coded bytes")
    elif h.payload_length != (count * h.codebook_bits + 7) // 8:
        raise BitstreamError(
            f"raw payload has {h.payload_length} bytes, {count} codes of {h.codebook_bits} bits "
            f"need {(count * h.codebook_bits + 7) // 8}"
        )


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise BitstreamError(message)
