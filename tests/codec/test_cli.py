"""The telucodec CLI: round trips equal to the pipeline, info, options, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from codec.bitstream import read_bitstream
from codec.cli import MODEL_ENV, build_parser, main
from codec.export import load_export

pytestmark = pytest.mark.usefixtures("single_thread")


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _info(capsys, path) -> dict:
    code, out, _ = _run(capsys, "info", path, "--json")
    assert code == 0
    return json.loads(out)


@pytest.mark.parametrize("entropy", ["--entropy", "--no-entropy"])
def test_round_trip_equals_the_pipeline_reconstruction(capsys, tmp_path, tiny_export, speech_wav, entropy):
    wav = speech_wav(seconds=1.3)
    tcq, out = tmp_path / "x.tcq", tmp_path / "y.wav"
    assert _run(capsys, "encode", wav, tcq, "--model", tiny_export, "--levels", 3, entropy)[0] == 0
    assert _run(capsys, "decode", tcq, out, "--model", tiny_export, "--subtype", "FLOAT")[0] == 0

    codec = load_export(tiny_export).codec
    x = torch.from_numpy(sf.read(wav, dtype="float32")[0])[None, None]
    reference = codec.decode(codec.encode(x, 3))[0, 0, : x.shape[-1]].numpy()
    decoded, rate = sf.read(out, dtype="float32")
    assert rate == codec.sample_rate
    assert np.array_equal(decoded, reference)  # bit for bit: a single chunk

    info = _info(capsys, tcq)
    assert info["entropy_coded"] is (entropy == "--entropy")
    assert info["num_samples"] == x.shape[-1] and info["num_levels"] == 3
    assert info["model_id"] == load_export(tiny_export).model_id[:32]


def test_chunked_cli_matches_whole_file_within_tolerance(capsys, tmp_path, tiny_export, speech_wav):
    wav = speech_wav(seconds=2.0)
    for name, chunk in [("whole", 100.0), ("chunked", 0.3)]:
        assert _run(capsys, "encode", wav, tmp_path / f"{name}.tcq", "--model", tiny_export,
                    "--chunk-seconds", chunk)[0] == 0
        assert _run(capsys, "decode", tmp_path / f"{name}.tcq", tmp_path / f"{name}.wav", "--model", tiny_export,
                    "--subtype", "FLOAT", "--chunk-seconds", chunk)[0] == 0
    assert (tmp_path / "whole.tcq").read_bytes() == (tmp_path / "chunked.tcq").read_bytes()
    whole, chunked = sf.read(tmp_path / "whole.wav")[0], sf.read(tmp_path / "chunked.wav")[0]
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5)


def test_any_rate_and_channels_in_any_rate_out(capsys, tmp_path, tiny_export, speech_wav):
    wav = speech_wav("stereo.wav", seconds=1.0, rate=44100, channels=2, subtype="PCM_24")
    tcq = tmp_path / "s.tcq"
    code, out, _ = _run(capsys, "encode", wav, tcq, "--model", tiny_export)
    assert code == 0 and "kbit/s" in out
    info = _info(capsys, tcq)
    assert info["source_rate"] == 44100 and info["sample_rate"] == 16000
    assert info["duration_seconds"] == pytest.approx(1.0, abs=1e-3)
    assert _run(capsys, "decode", tcq, tmp_path / "o.flac", "--model", tiny_export, "--rate", 22050)[0] == 0
    decoded = sf.info(tmp_path / "o.flac")
    assert (decoded.samplerate, decoded.channels, decoded.subtype) == (22050, 1, "PCM_16")
    assert decoded.frames == pytest.approx(22050, abs=2)


def test_bitrate_options_and_info_text(capsys, tmp_path, tiny_export, speech_wav):
    wav = speech_wav(seconds=0.5)
    per_level = load_export(tiny_export).codec.bitrate_kbps(1)  # 0.25 kbit/s for the tiny codec
    assert _run(capsys, "encode", wav, tmp_path / "a.tcq", "--model", tiny_export, "--kbps", 2.5 * per_level)[0] == 0
    assert _info(capsys, tmp_path / "a.tcq")["num_levels"] == 2
    assert _run(capsys, "encode", wav, tmp_path / "b.tcq", "--model", tiny_export, "--kbps", 100)[0] == 0
    assert _info(capsys, tmp_path / "b.tcq")["num_levels"] == 4

    code, out, _ = _run(capsys, "info", tmp_path / "a.tcq")
    assert code == 0
    for field in ("model_id", "frame_rate", "duration_seconds", "nominal_kbps", "achieved_kbps", "entropy_coded"):
        assert field in out
    h = read_bitstream(tmp_path / "a.tcq").header
    assert f"{h.nominal_kbps:.3f}" in out and f"{h.payload_kbps:.3f}" in out


def test_model_from_the_environment(capsys, tmp_path, tiny_export, speech_wav, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(tiny_export))
    assert _run(capsys, "encode", speech_wav(seconds=0.3), tmp_path / "a.tcq")[0] == 0
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "nowhere.safetensors"))
    code, _, err = _run(capsys, "decode", tmp_path / "a.tcq", tmp_path / "a.wav")
    assert code == 1 and "nowhere.safetensors not found" in err and MODEL_ENV in err


def test_bad_inputs_exit_1_with_a_message(capsys, tmp_path, tiny_codec, tiny_export, speech_wav):
    from codec.export import ExportConfig, export_codec

    wav = speech_wav(seconds=0.3)
    tcq = tmp_path / "a.tcq"
    assert _run(capsys, "encode", wav, tcq, "--model", tiny_export)[0] == 0
    (tmp_path / "cut.tcq").write_bytes(tcq.read_bytes()[:-3])
    (tmp_path / "notaudio.wav").write_bytes(b"hello")
    other = tmp_path / "other.safetensors"
    changed = load_export(tiny_export).codec
    with torch.no_grad():
        changed.decoder.output_scale.mul_(2)
    export_codec(changed, other, ExportConfig())

    cases = [
        (("decode", tmp_path / "cut.tcq", tmp_path / "o.wav", "--model", tiny_export), "truncated"),
        (("decode", tcq, tmp_path / "o.wav", "--model", other), "encoded with model"),
        (("decode", tcq, tmp_path / "o.xyz", "--model", tiny_export), "unknown audio format"),
        (("decode", tcq, tmp_path / "o.flac", "--model", tiny_export, "--subtype", "FLOAT"), "cannot hold"),
        (("encode", tmp_path / "notaudio.wav", tmp_path / "b.tcq", "--model", tiny_export), "unreadable"),
        (("encode", wav, tmp_path / "b.tcq", "--model", tiny_export, "--levels", 9), "--levels"),
        (("encode", wav, tmp_path / "b.tcq", "--model", tiny_export, "--kbps", 0.01), "lowest bitrate"),
        (("encode", wav, tmp_path / "b.tcq", "--model", wav), "model"),
        (("info", tmp_path / "missing.tcq"), "cannot read"),
    ]
    for argv, message in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 1 and err.startswith("error:") and message in err, (argv, err)
    assert not (tmp_path / "o.wav").exists() and not (tmp_path / "b.tcq").exists()  # nothing half-written


@pytest.mark.parametrize("command", [[], ["encode"], ["decode"], ["info"]])
def test_help_for_every_command(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: telucodec {command[0] if command else ''}".rstrip() in capsys.readouterr().out


def test_process_exit_codes(tmp_path):
    # A real process: no traceback, status 1 for a corrupted file, 2 for a usage error, 0 for --help.
    (tmp_path / "bad.tcq").write_bytes(b"TCQ1" + bytes(100))
    cli = [sys.executable, "-m", "codec.cli"]
    bad = subprocess.run([*cli, "info", str(tmp_path / "bad.tcq")], capture_output=True, text=True)
    assert bad.returncode == 1 and "error:" in bad.stderr and "Traceback" not in bad.stderr
    usage = subprocess.run([*cli, "encode"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    assert subprocess.run([*cli, "--help"], capture_output=True).returncode == 0
