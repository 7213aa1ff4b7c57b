"""`telucodec stream-encode`'s WAV input: every PCM layout it accepts reads as soundfile reads it (8-bit unsigned,
16-, 24-, 32-bit integer, 32/64-bit float; plain or WAVE_FORMAT_EXTENSIBLE; mono and stereo; from a pipe that
hands over a few bytes at a time); every header it cannot read, and NaN or infinite samples, stop with one line
and status 1; and a property-based test of the header parser: any bytes give a valid layout or
StreamInputError, and no read asks for more than 64 KiB."""

from __future__ import annotations

import io
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.cli.main import main
from codec.cli.stream import MAX_CHANNELS, MAX_RATE, PcmLayout, StreamInputError, _pcm_reader, _wav_header
from codec.config.export import ExportConfig
from codec.formats.export import export_codec
from tests.codec.cli.test_stream import ENV, TELUCODEC
from tests.codec.model.test_streaming import causal_codec

READ_BOUND = 1 << 16
SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")
PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("wav") / "seanet.safetensors"
    export_codec(causal_codec("seanet"), path, ExportConfig())
    return path


class Trickle(io.BytesIO):
    """A pipe that hands over at most ``most`` bytes a read, and checks no read is unbounded or too large."""

    def __init__(self, data: bytes, most: int = 1 << 30):
        super().__init__(data)
        self.most = most

    def read(self, size: int | None = -1) -> bytes:
        assert size is not None and 0 <= size <= READ_BOUND, size
        return super().read(min(size, self.most))


def wav_bytes(samples: np.ndarray, subtype: str, fmt: str = "WAV", rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def read_all(data: bytes, chunk_ms: float = 20.0, most: int = 1 << 30, fmt: str = "auto") -> tuple[int, np.ndarray]:
    rate, blocks = _pcm_reader(Trickle(data, most), fmt, 16000, 1, chunk_ms)
    return rate, np.concatenate(list(blocks))


def fmt_chunk(tag=1, channels=1, rate=16000, bits=16, align=None, extra=b"") -> bytes:
    align = channels * bits // 8 if align is None else align
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * max(align, 1), align, bits) + extra
    return b"fmt " + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def extensible(sub_tag: int = 1, channels=1, bits=32, tail: bytes = PCM_GUID_TAIL, rate=16000) -> bytes:
    guid = struct.pack("<H", sub_tag) + tail
    return fmt_chunk(0xFFFE, channels, rate, bits, extra=struct.pack("<HHI", 22, bits, 0) + guid)


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def data_chunk(payload: bytes, size: int | None = None) -> bytes:
    return b"data" + struct.pack("<I", len(payload) if size is None else size) + payload


# ------------------------------------------------------------------------------- reading right


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype", SUBTYPES)
@pytest.mark.parametrize("container", ["WAV", "WAVEX"])
def test_every_layout_reads_as_soundfile_does(container, subtype, channels):
    rng = np.random.default_rng(channels)
    if subtype.startswith("PCM"):  # full-scale integers: every bit of a 32-bit sample, rounding included
        samples = rng.integers(-(1 << 31), 1 << 31, (1234, channels), dtype=np.int64).astype(np.int32)
        samples[:2] = [[-(1 << 31)] * channels, [(1 << 31) - 1] * channels]
    else:  # beyond full scale too: float is read as it is
        samples = (rng.standard_normal((1234, channels)) * 0.7).astype(np.float64)
    data = wav_bytes(samples, subtype, container)
    expected, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    for chunk_ms, most in ((20.0, 1 << 30), (7.0, 5)):  # blocks of odd sizes; a pipe giving 5 bytes a read
        got_rate, got = read_all(data, chunk_ms, most)
        assert got_rate == rate and got.dtype == np.float32
        assert np.array_equal(got, expected), (container, subtype, channels, np.abs(got - expected).max())
    assert np.array_equal(read_all(data, fmt="wav")[1], expected)


def test_chunks_before_the_data_are_skipped_and_after_it_ignored():
    pcm = (np.arange(-800, 800, dtype=np.int16) * 40).tobytes()
    junk = b"LIST" + struct.pack("<I", 100_001) + bytes(100_001) + b"\0"  # odd size: one pad byte; > 64 KiB
    data = riff(fmt_chunk(), junk, data_chunk(pcm), b"LIST" + struct.pack("<I", 4) + b"abcd")
    rate, got = read_all(data, most=333)
    assert rate == 16000 and np.array_equal(got[:, 0] * 32768, np.frombuffer(pcm, "<i2"))


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF, 0x7FFFFFFF])
def test_a_live_data_size_reads_until_the_input_ends(size):
    pcm = (np.arange(3000, dtype=np.int16) - 1500).tobytes()
    _, got = read_all(riff(fmt_chunk(), data_chunk(pcm, size)), most=1000)
    assert got.shape == (3000, 1) and np.array_equal(got[:, 0] * 32768, np.frombuffer(pcm, "<i2"))


def test_a_declared_data_size_ends_the_samples_at_a_whole_frame():
    pcm = np.arange(100, dtype=np.int16).tobytes()
    _, got = read_all(riff(fmt_chunk(channels=2, bits=16), data_chunk(pcm, 4 * 10 + 3)))  # 10 frames + 3 bytes
    assert got.shape == (10, 2) and np.array_equal(got.reshape(-1) * 32768, np.arange(20))


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
@pytest.mark.parametrize("container", ["WAV", "WAVEX"])
def test_stream_encode_gives_the_same_codes_for_the_same_samples_in_any_layout(model, tmp_path, container, subtype):
    """32-bit PCM in a WAVE_FORMAT_EXTENSIBLE header was read as float (garbage codes); 8- and 24-bit PCM
    stopped with a traceback. Samples that every layout holds exactly give one code stream."""
    steps = np.random.default_rng(0).integers(-128, 128, (8000, 2))
    samples = (steps * 256).astype(np.int16)  # k / 128: exact in 8-bit unsigned and every wider layout
    reference, other = tmp_path / "ref.wav", tmp_path / "other.wav"
    sf.write(reference, samples, 16000, subtype="PCM_16")
    sf.write(other, samples.astype(np.float64) / 32768, 16000, format=container, subtype=subtype)
    for wav in (reference, other):
        assert main(["stream-encode", str(wav), str(wav.with_suffix(".tcs")), "--model", str(model)]) == 0
    assert reference.with_suffix(".tcs").read_bytes() == other.with_suffix(".tcs").read_bytes()


# ------------------------------------------------------------------------------- refusing the rest

PCM = bytes(640)
REFUSED = {
    "empty input: no WAV header": b"",
    "not a WAV stream": b"RIFF\0\0\0\0WAVX" + bytes(40),
    "WAV header: 0 channels (1..64)": riff(fmt_chunk(channels=0, align=0), data_chunk(PCM)),
    "WAV header: 65 channels (1..64)": riff(fmt_chunk(channels=65), data_chunk(PCM)),
    "WAV header: sample rate 0 Hz (1..768000)": riff(fmt_chunk(rate=0), data_chunk(PCM)),
    "WAV header: sample rate 800000 Hz (1..768000)": riff(fmt_chunk(rate=800_000), data_chunk(PCM)),
    "WAV header: a fmt chunk of 14 bytes (at least 16)": riff(
        b"fmt " + struct.pack("<I", 14) + fmt_chunk()[8:22], data_chunk(PCM)
    ),
    "WAV header without a data chunk (the input ends at byte 36)": riff(fmt_chunk()),
    "truncated WAV header: it ends inside the 'fmt ' chunk at byte 12": riff(fmt_chunk())[:30],
    "WAV stream of 12-bit PCM samples": riff(fmt_chunk(bits=12, align=2), data_chunk(PCM)),
    "WAV stream of 16-bit float samples": riff(fmt_chunk(tag=3, bits=16), data_chunk(PCM)),
    "WAV format 0x0006: not PCM (1) or IEEE float (3)": riff(fmt_chunk(tag=6, bits=8), data_chunk(PCM)),
    "WAV header: block align 4 for 1 channel of 16 bits (must be 2)": riff(fmt_chunk(align=4), data_chunk(PCM)),
    "WAV header: a data chunk at byte 12 before any fmt chunk": riff(data_chunk(PCM), fmt_chunk()),
    "WAV header: a second fmt chunk at byte 36": riff(fmt_chunk(), fmt_chunk(), data_chunk(PCM)),
    "WAVE_FORMAT_EXTENSIBLE sub-format 00000001-0000-0000-0000-000000000000: not PCM or IEEE float": riff(
        extensible(tail=bytes(14)), data_chunk(PCM)
    ),
    "WAV format 0x0055: not PCM (1) or IEEE float (3)": riff(extensible(sub_tag=0x55), data_chunk(PCM)),
    "a WAVE_FORMAT_EXTENSIBLE fmt chunk of 18 bytes (extension 0): at least 40 (22)": riff(
        fmt_chunk(0xFFFE, bits=16, extra=b"\0\0"), data_chunk(PCM)
    ),
    "WAV header: the 'JUNK' chunk at byte 36 claims 4000000000 bytes": riff(
        fmt_chunk(), b"JUNK" + struct.pack("<I", 4_000_000_000), data_chunk(PCM)
    ),
    "non-finite: NaN or infinite samples (the first at frame 5)": riff(
        fmt_chunk(tag=3, bits=32), data_chunk(np.array([0.1] * 5 + [np.nan, 0.2], "<f4").tobytes())
    ),
    "non-finite: NaN or infinite samples (the first at frame 2)": riff(
        fmt_chunk(tag=3, bits=64, channels=2), data_chunk(np.array([0, 0, 0, 0, 0, -np.inf], "<f8").tobytes())
    ),
    "truncated input: it ends inside a sample (1 bytes over)": riff(fmt_chunk(bits=24), data_chunk(bytes(7), 0)),
}


class Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


@pytest.mark.parametrize("message", sorted(REFUSED))
def test_what_it_cannot_read_stops_with_one_line(model, tmp_path, capsys, monkeypatch, message):
    monkeypatch.setattr(sys, "stdin", Stdin(REFUSED[message]))
    out = tmp_path / "out.tcs"
    code = main(["stream-encode", "--input-format", "wav", "-", str(out), "--model", str(model)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and message in lines[0], lines
    assert lines[0].startswith("error: -: ") and not out.exists()


def test_the_reader_refuses_the_same_without_the_cli():
    for message, data in REFUSED.items():
        with pytest.raises(StreamInputError) as caught:
            _, blocks = _pcm_reader(Trickle(data, 3), "wav", 16000, 1, 80.0)
            list(blocks)
        assert message in str(caught.value)


def test_a_pipe_of_a_bad_wav_gets_one_line_and_the_codes_before_a_nan(model):
    """Through the installed command and a real pipe: no traceback; the packets before the block with a NaN
    are out already (it is a live stream), then the stream stops there with status 1."""
    samples = np.full(16000, 0.1, dtype="<f4")
    samples[12000] = np.nan
    data = riff(fmt_chunk(tag=3, bits=32), data_chunk(samples.tobytes(), 0))
    for stdin, message, codes_first in (
        (data, b"non-finite: NaN or infinite samples (the first at frame 12000)", True),
        (b"", b"empty input: no WAV header", False),
        (riff(fmt_chunk(bits=8, rate=10**6), data_chunk(PCM)), b"sample rate 1000000 Hz (1..768000)", False),
    ):
        done = subprocess.run(
            [TELUCODEC, "stream-encode", "--input-format", "wav", "--model", str(model)],
            input=stdin,
            capture_output=True,
            env=ENV,
            timeout=120,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and message in lines[0], done.stderr
        # Nothing is written before the WAV header is read; the header (44 bytes) and packets before a NaN are.
        assert len(done.stdout) > 44 + 4 * 16 if codes_first else done.stdout == b""


# ---------------------------------------------------------------------------------- fuzzing

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_VALID = [
    wav_bytes(np.zeros((9, channels)) + 0.25, subtype, container)
    for container, subtype, channels in (
        ("WAV", "PCM_16", 1),
        ("WAV", "PCM_U8", 2),
        ("WAV", "FLOAT", 1),
        ("WAVEX", "PCM_24", 2),
        ("WAVEX", "PCM_32", 1),
        ("WAVEX", "DOUBLE", 2),
    )
]


def check_reader(data: bytes, most: int = 1 << 30) -> None:
    """The header parser and the block reader: a valid layout and finite float32 samples, or StreamInputError;
    never another exception, never a read over the bound."""
    try:
        layout = _wav_header(Trickle(data, most))
        rate, blocks = _pcm_reader(Trickle(data, most), "auto", 16000, 1, 3.0)
        samples = list(blocks)
    except StreamInputError:
        return
    assert isinstance(layout, PcmLayout) and rate == layout.rate
    assert 1 <= layout.channels <= MAX_CHANNELS and 1 <= layout.rate <= MAX_RATE
    assert layout.bits in ((32, 64) if layout.is_float else (8, 16, 24, 32))
    for block in samples:
        assert block.dtype == np.float32 and block.shape[1] == layout.channels and np.isfinite(block).all()


@_FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data):
    check_reader(data)
    check_reader(b"RIFF" + data)
    check_reader(b"RIFF\0\0\0\0WAVE" + data, most=7)


@_FUZZ
@given(
    st.sampled_from(range(len(_VALID))),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 300),
)
def test_fuzz_mutated_headers(which, edits, cut):
    data = bytearray(_VALID[which])
    for position, value in edits:
        data[position % len(data)] = value
    check_reader(bytes(data[: len(data) - cut % (len(data) + 1)]))


@_FUZZ
@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, (1 << 32) - 1),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.one_of(st.integers(0, 60), st.integers(0, (1 << 32) - 1)),
    st.one_of(st.integers(0, 60), st.integers(0, (1 << 32) - 1)),
)
def test_fuzz_header_fields(tag, channels, rate, align, bits, fmt_size, data_size):
    """Any fmt fields and any claimed chunk sizes (a short fmt, a fmt or data size of gigabytes)."""
    body = struct.pack("<HHIIHH", tag, channels, rate, 0, align, bits) + struct.pack("<HHI", 22, bits, 0)
    body += struct.pack("<H", tag & 0xFF) + PCM_GUID_TAIL
    fmt = b"fmt " + struct.pack("<I", fmt_size) + body[:fmt_size]
    check_reader(riff(fmt, b"data" + struct.pack("<I", data_size) + bytes(48)))
