"""The live code stream (:mod:`codec.formats.code_stream`): round trip, precise messages for a bad header or end
marker, and property-based tests: random and mutated bytes either parse into valid packets or raise
CodeStreamError, never anything else, and no read asks for more than the largest packet."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.formats.code_stream import (
    MAX_PACKET_FRAMES,
    CodeStreamError,
    StreamHeader,
    end_marker,
    packet,
    read_header,
    read_packets,
)

MODEL_ID = bytes(range(16))
HEADER = StreamHeader(MODEL_ID, 16000, 320, 1024, 3)
# The largest read the parser may ask for: a maximal packet's codes (64 levels of 16 bits).
MAX_READ = (MAX_PACKET_FRAMES * 64 * 16 + 7) // 8


class Source(io.BytesIO):
    """A stream that checks every read the parser makes is bounded (no read-all, no huge claimed size)."""

    def read(self, size: int | None = -1) -> bytes:
        assert size is not None and 0 <= size <= MAX_READ, size
        return super().read(size)


def stream(header: StreamHeader = HEADER, packets=((5, 320), (3, 17)), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    parts = [header.to_bytes()]
    for frames, last in packets:
        parts.append(packet(rng.integers(0, header.codebook_size, (header.num_levels, frames)), last, header))
    return b"".join(parts) + end_marker()


def parse(data: bytes) -> list[tuple[np.ndarray, int]]:
    source = Source(data)
    header = read_header(source)
    return list(read_packets(source, header))


def header_bytes(**fields) -> bytes:
    """A header with fields overridden (``bits`` as written, by default the codebook's) and a valid CRC."""
    values = dict(rate=16000, hop=320, size=1024, levels=3, version=1, flags=0)
    values.update(fields)
    bits = values.pop("bits", max(1, (values["size"] - 1).bit_length()))
    body = struct.pack(
        "<4sHH16sIIIBBH",
        b"TCS1",
        values["version"],
        values["flags"],
        MODEL_ID,
        values["rate"],
        values["hop"],
        values["size"],
        values["levels"],
        bits,
        0,
    )
    return body + struct.pack("<I", zlib.crc32(body))


def test_a_stream_round_trips():
    rng = np.random.default_rng(1)
    codes = [rng.integers(0, 1024, (3, n)) for n in (1, 7, 2)]
    data = HEADER.to_bytes() + b"".join(packet(c, 320, HEADER) for c in codes[:-1])
    data += packet(codes[-1], 5, HEADER) + end_marker()
    source = Source(data)
    assert read_header(source) == HEADER
    got = list(read_packets(source, HEADER))
    assert [last for _, last in got] == [320, 320, 5]
    for (c, _), expected in zip(got, codes, strict=True):
        assert np.array_equal(c, expected)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(rate=0), "sample_rate 0 out of range 1..768000"),
        (dict(rate=1 << 31), f"sample_rate {1 << 31} out of range 1..768000"),
        (dict(hop=0), "hop_length 0 out of range 1..65535"),
        (dict(hop=70000), "hop_length 70000 out of range 1..65535"),
        (dict(size=1), "codebook_size 1 out of range 2..65536"),
        (dict(size=1 << 20), f"codebook_size {1 << 20} out of range 2..65536"),
        (dict(levels=0), "num_levels 0 out of range 1..64"),
        (dict(levels=65), "num_levels 65 out of range 1..64"),
        (dict(bits=9), "codebook_bits 9 does not match codebook_size 1024 (10 bits)"),
        (dict(version=2), "code stream version 2: this build reads version 1"),
        (dict(flags=4), "code stream flags 0x0004: version 1 defines none (must be 0)"),
    ],
)
def test_a_header_out_of_range_names_the_field_its_value_and_the_range(fields, message):
    with pytest.raises(CodeStreamError) as caught:
        read_header(Source(header_bytes(**fields)))
    assert message in str(caught.value)


def test_the_end_marker_messages_say_what_was_found_and_where():
    data = stream(packets=((5, 320),))
    end = len(data) - 8  # the end marker's offset
    with pytest.raises(CodeStreamError, match=rf"data after the end marker: 3 bytes \(616263\) at byte {end + 8}$"):
        parse(data + b"abc")
    with pytest.raises(CodeStreamError, match=rf"ends after 5 frames \(byte {end}\) without its end marker"):
        parse(data[:end])
    odd = struct.pack("<HH", 0, 7)
    with pytest.raises(
        CodeStreamError,
        match=rf"at byte {end}: 0 frames with 7 samples in its last frame, neither a packet \(1..65535 frames\) "
        r"nor the end marker \(0 frames, 0 samples\)",
    ):
        parse(data[:end] + odd + struct.pack("<I", zlib.crc32(odd)))
    with pytest.raises(CodeStreamError, match=rf"CRC mismatch in the end marker at byte {end}"):
        parse(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(CodeStreamError, match=rf"ends inside the end marker at byte {end}"):
        parse(data[:-2])


def test_codes_outside_the_codebook_and_a_bad_last_frame_are_refused():
    small = StreamHeader(MODEL_ID, 16000, 320, 5, 2)  # 3 bits a code can say 5, 6 and 7
    body = struct.pack("<HH", 1, 320) + bytes([0b11111100])
    data = small.to_bytes() + body + struct.pack("<I", zlib.crc32(body)) + end_marker()
    with pytest.raises(CodeStreamError, match="code 7 outside the codebook of 5 in the packet at byte 44"):
        parse(data)
    body = struct.pack("<HH", 1, 321) + bytes([0])
    data = small.to_bytes() + body + struct.pack("<I", zlib.crc32(body)) + end_marker()
    with pytest.raises(
        CodeStreamError, match=r"packet at byte 44 \(after 0 frames\): a last frame of 321 samples, out of range 1..320"
    ):
        parse(data)


# ---------------------------------------------------------------------------------- fuzzing

_FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_VALID = stream()


def check(data: bytes) -> None:
    """Either CodeStreamError, or a header within its ranges and packets of valid codes; no read too large."""
    try:
        source = Source(data)
        header = read_header(source)
        packets = []
        for codes, last in read_packets(source, header):
            packets.append((codes, last))
    except CodeStreamError:
        return
    assert 1 <= header.num_levels <= 64 and 2 <= header.codebook_size <= 1 << 16 and 1 <= header.hop_length
    for codes, last in packets:
        assert codes.shape[0] == header.num_levels and 1 <= codes.shape[1] <= MAX_PACKET_FRAMES
        assert codes.min() >= 0 and codes.max() < header.codebook_size and 1 <= last <= header.hop_length


@_FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data):
    check(data)
    check(b"TCS1" + data)


@_FUZZ
@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 10_000),
    st.booleans(),
)
def test_fuzz_mutated_streams(edits, cut, fix_crcs):
    data = bytearray(_VALID)
    for position, value in edits:
        data[position % len(data)] = value
    data = data[: len(data) - cut % 24]
    if fix_crcs and len(data) >= 44:
        # A valid header CRC sends the mutation past the integrity check into the range checks.
        data[40:44] = struct.pack("<I", zlib.crc32(data[:40]))
    check(bytes(data))


def raw_packet(frames: int, last: int, payload: bytes) -> bytes:
    body = struct.pack("<HH", frames, last) + payload
    return body + struct.pack("<I", zlib.crc32(body))


@_FUZZ
@given(
    st.integers(0, (1 << 32) - 1),
    st.integers(0, (1 << 32) - 1),
    st.one_of(st.integers(0, (1 << 17) + 2), st.integers(0, (1 << 32) - 1)),
    st.integers(0, 255),
    st.one_of(st.none(), st.integers(0, 255)),
    st.integers(1, 4),
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
)
def test_fuzz_header_fields(rate, hop, size, levels, bits, frames, last, fill):
    """Any header field values, then a packet of the size they imply with a valid CRC (codes all ``fill``)."""
    bits = max(1, (size - 1).bit_length()) if bits is None else bits
    payload = bytes([fill]) * ((frames * levels * bits + 7) // 8)
    check(
        header_bytes(rate=rate, hop=hop, size=size, levels=levels, bits=bits)
        + raw_packet(frames, last, payload)
        + end_marker()
    )


@_FUZZ
@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 200),
    st.binary(max_size=64),
    st.booleans(),
)
def test_fuzz_packet_sizes(frames, last, body_bytes, filler, fix_crc):
    """Crafted packet headers (up to 65,535 frames) with too little, enough or a wrong payload."""
    head = struct.pack("<HH", frames, last)
    payload = (filler * (body_bytes // max(1, len(filler)) + 1))[:body_bytes] if filler else bytes(body_bytes)
    crc = struct.pack("<I", zlib.crc32(head + payload) if fix_crc else 0)
    check(HEADER.to_bytes() + head + payload + crc + end_marker())


def test_a_maximal_packet_parses_within_the_read_bound():
    big = StreamHeader(MODEL_ID, 16000, 320, 1 << 16, 64)
    data = stream(big, packets=((MAX_PACKET_FRAMES, 1),))
    ((codes, last),) = parse(data)
    assert codes.shape == (64, MAX_PACKET_FRAMES) and last == 1
