"""The .tcq bitstream: packing, range coding, header fields, and hostile input."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.formats import bitstream as bs
from codec.formats.bitstream import (
    HEADER,
    MAX_SYMBOL_PROBABILITY,
    BitstreamError,
    build_bitstream,
    pack_codes,
    parse_bitstream,
    read_bitstream,
    unpack_codes,
)

K, LEVELS, HOP = 32, 3, 320
MODEL_ID = bytes(range(16))


def _distributions(seed: int = 0, levels: int = LEVELS, k: int = K) -> np.ndarray:
    """Skewed, capped distributions like the export's."""
    p = np.random.default_rng(seed).dirichlet(np.full(k, 0.3), size=levels) + 1e-3
    p /= p.sum(axis=1, keepdims=True)
    while p.max() > MAX_SYMBOL_PROBABILITY:
        p = 0.5 * p + 0.5 / k
    return p


def _codes(frames: int, p: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(p.shape[1], size=frames, p=row) for row in p])


def _stream(frames: int = 40, entropy: bool = True, num_samples: int | None = None) -> bytes:
    p = _distributions()
    return build_bitstream(
        _codes(frames, p),
        model_id=MODEL_ID,
        sample_rate=16000,
        hop_length=HOP,
        codebook_size=K,
        num_samples=num_samples or frames * HOP - 7,
        source_rate=44100,
        probabilities=p if entropy else None,
    )


def _with_header(data: bytes, **fields) -> bytes:
    """Rewrite header fields and recompute the CRC, so checks behind the CRC are reached."""
    names = [
        "magic",
        "version",
        "flags",
        "model_id",
        "sample_rate",
        "hop_length",
        "source_rate",
        "codebook_size",
        "num_levels",
        "codebook_bits",
        "reserved",
        "num_frames",
        "num_samples",
        "payload_length",
    ]
    values = dict(zip(names, HEADER.unpack_from(data)))
    values.update(fields)
    body = HEADER.pack(*values.values()) + data[HEADER.size : -4]
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("bits", [1, 5, 10, 13, 16])
def test_pack_round_trip_and_exact_size(bits):
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 1 << bits, size=(3, 37))
    payload = pack_codes(codes, bits)
    assert len(payload) == (codes.size * bits + 7) // 8
    np.testing.assert_array_equal(unpack_codes(payload, 3, 37, bits), codes)


def test_unpack_across_blocks():
    codes = np.random.default_rng(0).integers(0, 1 << 10, size=(3, 350_001))  # > 2**20 codes: several blocks
    np.testing.assert_array_equal(unpack_codes(pack_codes(codes, 10), 3, 350_001, 10), codes)


def test_pack_layout_is_frame_major_msb_first():
    # Frame 0: levels (1, 2); frame 1: levels (3, 0) at 2 bits -> 01 10 11 00.
    assert pack_codes(np.array([[1, 3], [2, 0]]), 2) == bytes([0b01101100])
    with pytest.raises(ValueError):
        pack_codes(np.array([[4]]), 2)


def test_header_fields_round_trip():
    data = _stream(frames=40, num_samples=40 * HOP - 7)
    h = parse_bitstream(data).header
    assert data[:4] == b"TCQ1" and h.version == 1 and h.model_id == MODEL_ID
    assert (h.sample_rate, h.hop_length, h.source_rate, h.codebook_size) == (16000, HOP, 44100, K)
    assert (h.num_levels, h.codebook_bits, h.num_frames, h.num_samples) == (LEVELS, 5, 40, 40 * HOP - 7)
    assert h.entropy_coded and h.frame_rate == 50
    assert h.file_bytes == len(data) == HEADER.size + h.payload_length + 4
    assert h.nominal_kbps == pytest.approx(LEVELS * 5 * 50 / 1000)
    assert h.payload_kbps == pytest.approx(8 * h.payload_length / h.duration_seconds / 1000)


@pytest.mark.parametrize("entropy", [False, True])
def test_codes_round_trip(entropy):
    p = _distributions()
    codes = _codes(500, p)
    data = build_bitstream(
        codes,
        model_id=MODEL_ID,
        sample_rate=16000,
        hop_length=HOP,
        codebook_size=K,
        num_samples=500 * HOP,
        source_rate=16000,
        probabilities=p if entropy else None,
    )
    stream = parse_bitstream(data)
    np.testing.assert_array_equal(stream.codes(p), codes)
    if entropy:
        # Skewed codes cost about their entropy, well under the 5 raw bits.
        entropy_bits = float(-(p * np.log2(p)).sum(axis=1).mean())
        assert 8 * stream.header.payload_length / codes.size < min(5.0, entropy_bits + 0.3)
        with pytest.raises(BitstreamError, match="needs the model"):
            stream.codes(None)


def test_worst_case_entropy_stream_fits_the_parser_bound():
    # All codes the most probable one: the cheapest stream a capped model allows is still accepted.
    p = _distributions()
    codes = np.tile(p.argmax(axis=1)[:, None], (1, 3000))
    data = build_bitstream(
        codes,
        model_id=MODEL_ID,
        sample_rate=16000,
        hop_length=HOP,
        codebook_size=K,
        num_samples=3000 * HOP,
        source_rate=16000,
        probabilities=p,
    )
    np.testing.assert_array_equal(parse_bitstream(data).codes(p), codes)


def test_distributions_over_the_cap_are_refused_by_the_encoder():
    p = _distributions()
    p[0] = 0.5 / (K - 1)
    p[0, 0] = 0.5
    with pytest.raises(BitstreamError, match="exceeds"):
        bs.entropy_encode(np.zeros((LEVELS, 4), dtype=np.int64), p)


def test_truncated_streams_are_rejected():
    data = _stream()
    for cut in [0, 1, 3, 4, 40, HEADER.size, len(data) - 5, len(data) - 1]:
        with pytest.raises(BitstreamError):
            parse_bitstream(data[:cut])
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        parse_bitstream(data + b"\x00")


def test_every_single_bit_flip_is_caught():
    data = _stream(frames=8)
    for position in range(len(data)):
        for bit in (0, 5):
            corrupted = bytearray(data)
            corrupted[position] ^= 1 << bit
            with pytest.raises(BitstreamError):
                parse_bitstream(bytes(corrupted))


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(magic=b"RIFF"), "not a TeluCodec bitstream"),
        (dict(version=2), "unsupported format version 2"),
        (dict(flags=0x81), "unknown flags"),
        (dict(reserved=7), "reserved"),
        (dict(codebook_bits=9), "codebook_bits"),
        (dict(num_levels=0), "num_levels"),
        (dict(num_levels=200), "num_levels"),
        (dict(codebook_size=1 << 20), "codebook_size"),
        (dict(sample_rate=0), "sample_rate"),
        (dict(hop_length=0), "hop_length"),
        (dict(num_samples=0), "num_samples"),
        (dict(num_samples=10 * HOP), "num_samples"),
        (dict(num_frames=0, num_samples=0), "frames"),
    ],
)
def test_bad_header_fields_are_rejected(fields, message):
    with pytest.raises(BitstreamError, match=message):
        parse_bitstream(_with_header(_stream(frames=40), **fields))


@pytest.mark.parametrize("entropy", [False, True])
def test_absurd_sizes_are_rejected_before_allocating(entropy):
    # 2**31 frames would need gigabytes: refused from the header alone, whatever the CRC says.
    frames = (1 << 31) // LEVELS
    data = _with_header(_stream(frames=40, entropy=entropy), num_frames=frames, num_samples=frames * HOP)
    with pytest.raises(BitstreamError, match="codes"):
        parse_bitstream(data)
    with pytest.raises(BitstreamError, match="truncated"):
        parse_bitstream(_with_header(_stream(frames=40, entropy=entropy), payload_length=1 << 60))


def test_raw_payload_values_beyond_the_codebook_are_rejected():
    codes = np.array([[31, 30]])
    # K = 30 packs in 5 bits, so 30 and 31 are representable but not valid codes.
    raw = pack_codes(codes, 5)
    head = bs.Header(
        model_id=MODEL_ID,
        sample_rate=16000,
        hop_length=HOP,
        source_rate=16000,
        codebook_size=30,
        num_levels=1,
        num_frames=2,
        num_samples=2 * HOP,
        payload_length=len(raw),
    ).pack()
    data = head + raw + struct.pack("<I", zlib.crc32(head + raw))
    with pytest.raises(BitstreamError, match="codebook size"):
        parse_bitstream(data).codes()


def test_nonzero_padding_bits_are_rejected():
    data = bytearray(_stream(frames=3, entropy=False))  # 9 codes x 5 bits = 45 bits: 3 padding bits
    data[-5] |= 1
    body = bytes(data[:-4])
    with pytest.raises(BitstreamError, match="padding"):
        parse_bitstream(body + struct.pack("<I", zlib.crc32(body))).codes()


def test_read_bitstream_reports_path_and_missing_files(tmp_path):
    path = tmp_path / "x.tcq"
    path.write_bytes(_stream()[:-1])
    with pytest.raises(BitstreamError, match="x.tcq: truncated"):
        read_bitstream(path)
    with pytest.raises(BitstreamError, match="cannot read"):
        read_bitstream(tmp_path / "missing.tcq")
    with pytest.raises(BitstreamError, match="not a file"):
        read_bitstream(tmp_path)


# ---------------------------------------------------------------------------------- fuzzing

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_VALID = {entropy: _stream(frames=12, entropy=entropy) for entropy in (False, True)}
_P = _distributions()


def _parse_and_decode(data: bytes) -> None:
    """Either a BitstreamError, or codes of the announced shape within the codebook."""
    try:
        stream = parse_bitstream(data)
        codes = stream.codes(_P)
    except BitstreamError:
        return
    h = stream.header
    assert codes.shape == (h.num_levels, h.num_frames)
    assert codes.min() >= 0 and codes.max() < h.codebook_size


@_FUZZ
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data):
    _parse_and_decode(data)


@_FUZZ
@given(
    st.booleans(),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 10_000),
    st.booleans(),
)
def test_fuzz_mutated_streams(entropy, edits, cut, fix_crc):
    data = bytearray(_VALID[entropy])
    for position, value in edits:
        data[position % len(data)] = value
    data = bytes(data[: max(4, len(data) - cut % 16)])
    if fix_crc and len(data) > 4:
        # A valid CRC sends the mutation past the integrity check into the field and payload checks.
        data = data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))
    _parse_and_decode(data)


@_FUZZ
@given(
    st.integers(0, (1 << 32) - 1),
    st.integers(0, (1 << 64) - 1),
    st.integers(0, (1 << 64) - 1),
    st.integers(0, 255),
    st.booleans(),
)
def test_fuzz_header_sizes(num_frames, num_samples, payload_length, num_levels, entropy):
    data = _with_header(
        _VALID[entropy],
        num_frames=num_frames,
        num_samples=num_samples,
        payload_length=payload_length,
        num_levels=num_levels,
    )
    _parse_and_decode(data)
