"""`telucodec stream-encode | telucodec stream-decode`: the pipe round trip equals file encode/decode, any input
rate and chunk; truncated, damaged and foreign streams and non-causal models stop with one line and status 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from codec.cli import common
from codec.cli.main import main
from codec.config.export import ExportConfig
from codec.formats.export import export_codec
from tests.codec.conftest import speechlike
from tests.codec.model.test_streaming import causal_codec
from tests.conftest import SHARED_CORPUS

TELUCODEC = str(Path(sys.executable).parent / "telucodec")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module", params=["seanet", "vocos-head4-lookahead-4"])
def model(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stream") / f"{request.param}.safetensors"
    export_codec(causal_codec(request.param), path, ExportConfig())
    return path


def pipe(model: Path, source: Path | bytes, *encode_args: str, decode_args: tuple[str, ...] = ()) -> tuple:
    """``stream-encode SOURCE | stream-decode`` -> (float32 samples, encoder result, decoder result)."""
    src = [str(source)] if isinstance(source, Path) else []
    enc = subprocess.run(
        [TELUCODEC, "stream-encode", *src, "--model", str(model), *encode_args],
        input=None if isinstance(source, Path) else source,
        capture_output=True,
        env=ENV,
    )
    dec = subprocess.run(
        [TELUCODEC, "stream-decode", "--model", str(model), "--output-format", "f32", *decode_args],
        input=enc.stdout,
        capture_output=True,
        env=ENV,
    )
    return np.frombuffer(dec.stdout, dtype="<f4"), enc, dec


def file_round_trip(model: Path, wav: Path, tmp_path: Path) -> np.ndarray:
    for cmd in (
        ["encode", str(wav), str(tmp_path / "x.tcq")],
        ["decode", str(tmp_path / "x.tcq"), str(tmp_path / "x.wav"), "--subtype", "FLOAT"],
    ):
        assert subprocess.run([TELUCODEC, *cmd, "--model", str(model)], capture_output=True, env=ENV).returncode == 0
    return sf.read(tmp_path / "x.wav", dtype="float32")[0]


def check_round_trip(model: Path, wav: Path, tmp_path: Path) -> None:
    expected = file_round_trip(model, wav, tmp_path)
    for chunk in ("20", "80"):
        audio, enc, dec = pipe(model, wav, "--chunk-ms", chunk)
        assert enc.returncode == 0 and dec.returncode == 0, (enc.stderr, dec.stderr)
        assert audio.shape == expected.shape and np.abs(audio - expected).max() <= 1e-5


def test_the_pipe_round_trip_equals_decoding_the_tcq_file(model, tmp_path):
    wav = tmp_path / "clip.wav"
    sf.write(wav, speechlike(2.31, 16000)[:, 0], 16000, subtype="PCM_16")
    check_round_trip(model, wav, tmp_path)


@pytest.mark.skipif(not os.path.isdir(SHARED_CORPUS), reason=f"real corpus not found at {SHARED_CORPUS}")
def test_the_pipe_round_trip_on_a_real_clip(model, tmp_path):
    clip = sorted(Path(SHARED_CORPUS).glob("*.wav"))[0]  # Telugu speech, 16 kHz
    check_round_trip(model, clip, tmp_path)


def test_raw_pcm_at_another_rate_is_resampled(model):
    raw = (speechlike(1.0, 8000, channels=2) * 32767).astype("<i2").tobytes()
    audio, enc, dec = pipe(model, raw, "--input-format", "raw", "--input-rate", "8000", "--channels", "2")
    assert enc.returncode == 0 and dec.returncode == 0
    assert abs(audio.shape[0] - 16000) <= 320 and np.abs(audio).max() > 0


def test_bad_streams_and_models_stop_with_one_line(tmp_path):
    model = tmp_path / "seanet.safetensors"
    export_codec(causal_codec("seanet"), model, ExportConfig())
    wav = tmp_path / "clip.wav"
    sf.write(wav, speechlike(1.0, 16000)[:, 0], 16000, subtype="PCM_16")
    stream = subprocess.run(
        [TELUCODEC, "stream-encode", str(wav), "--model", str(model)], capture_output=True, env=ENV
    ).stdout
    damaged = bytearray(stream)
    damaged[50] ^= 0xFF  # inside the first packet's codes (the header is 44 bytes, a packet's own header 4)
    cases = {
        "truncated code stream": stream[:-20],
        "CRC mismatch": bytes(damaged),
        "not a TeluCodec code stream": b"RIFF" + bytes(100),
        "empty input": b"",
    }
    for message, data in cases.items():
        done = subprocess.run(
            [TELUCODEC, "stream-decode", "--model", str(model)], input=data, capture_output=True, env=ENV, timeout=60
        )
        lines = done.stderr.decode().strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and message in lines[0], (message, lines)
    other = tmp_path / "other.safetensors"
    export_codec(causal_codec("seanet", seed=3), other, ExportConfig())
    done = subprocess.run(
        [TELUCODEC, "stream-decode", "--model", str(other)], input=stream, capture_output=True, env=ENV
    )
    assert done.returncode == 1 and b"made by model" in done.stderr
    cut = subprocess.run(
        [TELUCODEC, "stream-encode", "--input-format", "raw", "--model", str(model)],
        input=b"\x01\x02\x03",
        capture_output=True,
        env=ENV,
    )
    assert cut.returncode == 1 and b"ends inside a sample" in cut.stderr


def test_a_non_causal_model_is_refused(tiny_export, tmp_path):
    done = subprocess.run(
        [TELUCODEC, "stream-encode", "--model", str(tiny_export)], input=b"", capture_output=True, env=ENV
    )
    assert done.returncode == 1 and b"not causal" in done.stderr


def test_with_no_model_named_the_shipped_causal_codec_streams_and_is_said(capsys, tmp_path, tiny_export, monkeypatch):
    """A fresh clone (no models/telucodec.safetensors) and a checkout after `make run` (a non-causal default
    export) both stream with the shipped causal codec, said on stderr; a model the user names is never
    replaced, and encode keeps the non-causal pretrained codec."""
    causal = tmp_path / "stream.safetensors"
    export_codec(causal_codec("vocos-head4-lookahead-0"), causal, ExportConfig())
    monkeypatch.delenv(common.MODEL_ENV, raising=False)
    monkeypatch.setattr(common, "PRETRAINED_MODEL", tiny_export)
    monkeypatch.setattr(common, "PRETRAINED_STREAM_MODEL", causal)
    monkeypatch.setattr("codec.cli.stream.PRETRAINED_STREAM_MODEL", causal)
    monkeypatch.chdir(tmp_path)
    wav = tmp_path / "clip.wav"
    sf.write(wav, speechlike(0.5, 16000)[:, 0], 16000, subtype="PCM_16")

    def stream_encode(*extra) -> tuple[int, str]:
        code = main(["stream-encode", str(wav), str(tmp_path / "a.tcs"), *extra])
        return code, capsys.readouterr().err

    code, err = stream_encode()  # fresh clone
    assert code == 0 and f"using the pretrained Telugu codec {causal}" in err
    assert main(["stream-decode", str(tmp_path / "a.tcs"), str(tmp_path / "a.raw")]) == 0
    assert (tmp_path / "a.raw").stat().st_size == 2 * 16000 // 2  # 0.5 s of 16-bit samples
    assert f"using the pretrained Telugu codec {causal}" in capsys.readouterr().err
    assert main(["encode", str(wav), str(tmp_path / "a.tcq")]) == 0  # the file commands: the non-causal one
    assert f"using the pretrained Telugu codec {tiny_export}" in capsys.readouterr().err

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "telucodec.safetensors").write_bytes(tiny_export.read_bytes())  # after `make run`
    code, err = stream_encode()
    assert code == 0 and f"is not causal; using the pretrained streaming Telugu codec {causal}" in err
    code, err = stream_encode("--model", str(tiny_export))  # named: refused, not replaced
    assert code == 1 and "not causal" in err and "using" not in err


def test_packets_longer_than_a_decode_slice_decode_as_the_file_does(model, tmp_path):
    """--chunk-ms 3000 writes packets of up to 150 frames, which stream-decode hands on in slices of 50."""
    wav = tmp_path / "clip.wav"
    sf.write(wav, speechlike(3.37, 16000)[:, 0], 16000, subtype="PCM_16")
    expected = file_round_trip(model, wav, tmp_path)
    audio, enc, dec = pipe(model, wav, "--chunk-ms", "3000")
    assert enc.returncode == 0 and dec.returncode == 0, (enc.stderr, dec.stderr)
    assert audio.shape == expected.shape and np.abs(audio - expected).max() <= 1e-5


# Runs in a fresh interpreter: stream-decode (codec.cli.main.main) with the decoder spied on; prints the most
# frames the decoder was handed at once, the exit status and the process's peak RSS (kB).
_SPIED_DECODE = """
import resource, sys
from codec.cli.main import main
from codec.model.streaming import StreamingDecoder
most = [0]
decode = StreamingDecoder.decode
def spy(self, codes):
    most[0] = max(most[0], codes.shape[-1])
    return decode(self, codes)
StreamingDecoder.decode = spy
code = main(["stream-decode", "--model", sys.argv[1], sys.argv[2], sys.argv[3]])
print(most[0], code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_a_maximal_packet_is_decoded_in_bounded_slices(tmp_path):
    """One packet of 65,535 frames (123 KB of codes, 22 minutes of audio) took 5.3 GB decoded in one call: the
    decoder is handed at most DECODE_SLICE_FRAMES frames at once and the whole length comes out."""
    from codec.cli.stream import DECODE_SLICE_FRAMES
    from codec.formats.code_stream import MAX_PACKET_FRAMES, StreamHeader, end_marker, packet
    from codec.formats.export import load_export

    model = tmp_path / "seanet.safetensors"
    export_codec(causal_codec("seanet"), model, ExportConfig())
    codec = load_export(model).codec
    header = StreamHeader(load_export(model).model_id_bytes, 16000, codec.hop_length, 32, 3)
    codes = np.random.default_rng(0).integers(0, 32, (3, MAX_PACKET_FRAMES))
    stream = tmp_path / "max.tcs"
    stream.write_bytes(header.to_bytes() + packet(codes, 17, header) + end_marker())
    out = tmp_path / "max.raw"
    done = subprocess.run(
        [sys.executable, "-c", _SPIED_DECODE, str(model), str(stream), str(out)],
        capture_output=True,
        env=ENV,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    most, code, peak_kb = map(int, done.stdout.split())
    assert code == 0 and 1 <= most <= DECODE_SLICE_FRAMES == 50
    assert out.stat().st_size == 2 * ((MAX_PACKET_FRAMES - 1) * codec.hop_length + 17)  # 16-bit samples
    assert peak_kb < 1_500_000  # generous: ~0.35 GB here (torch included); 5.3 GB when decoded in one call


def test_a_named_output_that_is_the_input_or_says_another_format_is_refused(capsys, tmp_path):
    model = tmp_path / "seanet.safetensors"
    export_codec(causal_codec("seanet"), model, ExportConfig())
    wav = tmp_path / "talk.wav"
    sf.write(wav, speechlike(0.3, 16000)[:, 0], 16000, subtype="PCM_16")
    assert main(["stream-encode", str(wav), str(tmp_path / "talk.tcs"), "--model", str(model)]) == 0
    (tmp_path / "link.tcs").symlink_to(wav)
    cases = [
        (["stream-encode", str(wav), str(wav)], "is the input"),
        (["stream-encode", str(wav), str(tmp_path / "link.tcs")], "is the input"),
        (["stream-encode", str(wav), str(tmp_path / "codes.wav")], "a code stream would be written into a .wav name"),
        (["stream-decode", str(tmp_path / "talk.tcs"), str(tmp_path / "talk.tcs")], "is the input"),
        (
            ["stream-decode", str(tmp_path / "talk.tcs"), str(tmp_path / "out.tcq")],
            "audio would be written into a .tcq",
        ),
    ]
    capsys.readouterr()
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and not p.is_symlink()}
    for argv, message in cases:
        code = main([*argv, "--model", str(model)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (argv, lines)
    assert {p: p.read_bytes() for p in before} == before  # the recording and the stream intact
    assert not (tmp_path / "codes.wav").exists() and not (tmp_path / "out.tcq").exists()
