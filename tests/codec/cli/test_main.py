"""The telucodec CLI: round trips equal to the pipeline, info, options, errors and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from codec.cli import common
from codec.cli.common import MODEL_ENV
from codec.cli.main import build_parser, main
from codec.formats.bitstream import read_bitstream
from codec.formats.export import load_export

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
        assert (
            _run(capsys, "encode", wav, tmp_path / f"{name}.tcq", "--model", tiny_export, "--chunk-seconds", chunk)[0]
            == 0
        )
        assert (
            _run(
                capsys,
                "decode",
                tmp_path / f"{name}.tcq",
                tmp_path / f"{name}.wav",
                "--model",
                tiny_export,
                "--subtype",
                "FLOAT",
                "--chunk-seconds",
                chunk,
            )[0]
            == 0
        )
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
    from codec.formats.export import ExportConfig, export_codec

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
        (("decode", tcq, tmp_path / "o.flac", "--model", tiny_export, "--subtype", "FLOAT"), "cannot hold"),
        (("encode", tmp_path / "notaudio.wav", tmp_path / "b.tcq", "--model", tiny_export), "unreadable"),
        (("encode", wav, tmp_path / "b.tcq", "--model", tiny_export, "--levels", 9), "--levels"),
        (("encode", wav, tmp_path / "b.tcq", "--model", tiny_export, "--kbps", 0.01), "lowest bitrate"),
        (("encode", wav, tmp_path / "b.tcq", "--model", wav), "model"),
        (("info", tmp_path / "missing.tcq"), "missing.tcq: no such file"),
        (("decode", tmp_path / "missing.tcq", tmp_path / "o.wav", "--model", tiny_export), "no such file"),
        (("encode", tmp_path / "missing.wav", tmp_path / "b.tcq", "--model", tiny_export), "missing.wav: no such file"),
        (("info", tmp_path), "is a folder"),
    ]
    for argv, message in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 1 and err.startswith("error:") and message in err, (argv, err)
    assert not (tmp_path / "o.wav").exists() and not (tmp_path / "b.tcq").exists()  # nothing half-written


def _same_file_cases(tmp_path: Path, wav: Path, tcq: Path) -> list[tuple[list, str]]:
    """Outputs that would destroy an input, or whose suffix does not say what is written, in every form."""
    (tmp_path / "link.tcq").symlink_to(wav)  # a .tcq name that is the recording through a link
    os.link(tcq, tmp_path / "hard.wav")  # a .wav name that is the bitstream through a hard link
    clips = tmp_path / "clips"
    clips.mkdir()
    os.link(wav, clips / "a.wav")
    (clips / "a.tcq").symlink_to(clips / "a.wav")  # batch: a's output would be a itself
    codes = tmp_path / "codes"
    codes.mkdir()
    os.link(tcq, codes / "b.tcq")
    (codes / "b.wav").symlink_to(codes / "b.tcq")
    return [
        (["encode", wav, wav], "is the input"),
        (["encode", wav, tmp_path / "link.tcq"], "is the input"),
        (["encode", wav, tmp_path / "speech.wav.flac"], "a .tcq bitstream goes to a .tcq file, not .flac"),
        (["decode", tcq, tcq], "is the input"),
        (["decode", tcq, tmp_path / "hard.wav"], "is the input"),
        (["decode", tcq, tmp_path / "o.xyz"], "goes to a .wav or .flac file, not .xyz"),
        (["encode", clips, clips], "is the input"),
        (["decode", codes, codes], "is the input"),
    ]


def test_an_output_that_is_an_input_or_has_the_wrong_suffix_is_refused_before_anything_runs(
    capsys, tmp_path, tiny_export, speech_wav
):
    """`telucodec encode talk.wav talk.wav` once replaced the recording with its .tcq and exited 0."""
    wav = speech_wav(seconds=0.3)
    tcq = tmp_path / "a.tcq"
    assert _run(capsys, "encode", wav, tcq, "--model", tiny_export)[0] == 0
    cases = _same_file_cases(tmp_path, wav, tcq)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for argv, message in cases:
        code, _, err = _run(capsys, *argv, "--model", tiny_export)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0] and "error:" in lines[0], (argv, err)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # every input intact, nothing written


@pytest.mark.parametrize("command", [[], ["encode"], ["decode"], ["info"]])
def test_help_for_every_command(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: telucodec {command[0] if command else ''}".rstrip() in capsys.readouterr().out


def test_process_exit_codes(tmp_path):
    # A real process: no traceback, status 1 for a corrupted file, 2 for a usage error, 0 for --help.
    (tmp_path / "bad.tcq").write_bytes(b"TCQ1" + bytes(100))
    cli = [sys.executable, "-m", "codec.cli.main"]
    bad = subprocess.run([*cli, "info", str(tmp_path / "bad.tcq")], capture_output=True, text=True)
    assert bad.returncode == 1 and "error:" in bad.stderr and "Traceback" not in bad.stderr
    usage = subprocess.run([*cli, "encode"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    assert subprocess.run([*cli, "--help"], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["encode", "a.wav", "b.tcq", "--chunk-seconds", "inf"],
        ["encode", "a.wav", "b.tcq", "--chunk-seconds", "nan"],
        ["decode", "a.tcq", "b.wav", "--chunk-seconds", "0"],
        ["decode", "a.tcq", "b.wav", "--chunk-seconds", "1e9"],
        ["encode", "a.wav", "b.tcq", "--kbps", "inf"],
        ["encode", "a.wav", "b.tcq", "--kbps", "-3"],
        ["encode", "a.wav", "b.tcq", "--levels", "0"],
        ["decode", "a.tcq", "b.wav", "--rate", "0"],
        ["decode", "a.tcq", "b.wav", "--rate", "1e3"],
        ["decode", "a.tcq", "b.wav", "--threads", "-1"],
    ],
    ids=lambda argv: " ".join(argv[3:]),
)
def test_numeric_options_out_of_range_are_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {argv[3]}" in err and "Traceback" not in err


def test_a_missing_default_model_says_where_it_was_looked_for(capsys, tmp_path, speech_wav, monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setattr(common, "PRETRAINED_MODEL", tmp_path / "no-pretrained.safetensors")  # a checkout without one
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "encode", speech_wav(seconds=0.3), tmp_path / "a.tcq")
    assert code == 1
    assert str(tmp_path / "models" / "telucodec.safetensors") in err  # absolute: the folder it was run from
    assert "relative to the current folder" in err and "--model" in err and MODEL_ENV in err


def test_without_a_built_model_the_shipped_pretrained_one_is_used_and_said(
    capsys, tmp_path, tiny_export, speech_wav, monkeypatch
):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setattr(common, "PRETRAINED_MODEL", tiny_export)
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "encode", speech_wav(seconds=0.3), tmp_path / "a.tcq")
    assert code == 0 and f"using the pretrained Telugu codec {tiny_export}" in err
    assert load_export(tiny_export).model_id.startswith(_info(capsys, tmp_path / "a.tcq")["model_id"])  # its prefix
    # A model the user names is never swapped for the pretrained one: a wrong path stays an error.
    code, _, err = _run(capsys, "encode", speech_wav(seconds=0.3), tmp_path / "b.tcq", "--model", tmp_path / "x")
    assert code == 1 and "not found" in err and not (tmp_path / "b.tcq").exists()
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "y"))
    code, _, err = _run(capsys, "encode", speech_wav(seconds=0.3), tmp_path / "b.tcq")
    assert code == 1 and "not found" in err and "pretrained" not in err


def test_info_into_a_closed_pipe_exits_quietly_like_unix_tools(capsys, tmp_path, tiny_export, speech_wav):
    tcq = tmp_path / "a.tcq"
    assert _run(capsys, "encode", speech_wav(seconds=0.3), tcq, "--model", tiny_export)[0] == 0
    # `telucodec info a.tcq | head -0`: the reader is gone before anything is written.
    proc = subprocess.Popen(
        [sys.executable, "-m", "codec.cli.main", "info", str(tcq)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""


@pytest.mark.parametrize(
    "signum, status, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_a_stopped_decode_leaves_nothing_behind(capsys, tmp_path, tiny_export, speech_wav, signum, status, word):
    tcq = tmp_path / "long.tcq"
    assert _run(capsys, "encode", speech_wav(seconds=240.0), tcq, "--model", tiny_export)[0] == 0
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # Tiny chunks: the decode takes many seconds, and its temporary file exists from the first one on.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codec.cli.main",
            "decode",
            str(tcq),
            str(out_dir / "long.wav"),
            "--model",
            str(tiny_export),
            "--chunk-seconds",
            "0.02",
            "--threads",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background (`cmd &`) inherits an ignored SIGINT, and Python
        # then installs no Ctrl-C handler: give the command the terminal's default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not any(out_dir.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the decode ended before it could be stopped"
    assert [p.name for p in out_dir.iterdir()][0].endswith(".tmp")
    os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status
    assert err.strip() == f"telucodec: {word}"  # one line, no traceback
    assert list(out_dir.iterdir()) == []  # neither the output nor its temporary file


def test_a_batch_codes_folders_and_lists_with_one_model_and_reports_failures(capsys, tmp_path, tiny_export, speech_wav):
    clips = tmp_path / "clips"
    (clips / "sub").mkdir(parents=True)
    for name in ("a.wav", "b.wav", "sub/c.wav"):
        sf.write(clips / name, sf.read(speech_wav(seconds=0.4))[0], 16000)
    (clips / "broken.wav").write_bytes(b"not audio at all")
    (clips / "notes.txt").write_text("not picked from a folder")
    extra = speech_wav("extra.wav", seconds=0.3)
    listed = tmp_path / "files.txt"
    listed.write_text(f"# more inputs\n{extra}\n\n{tmp_path / 'missing.wav'}\n")

    code, out, err = _run(
        capsys, "encode", clips, "--list", listed, tmp_path / "codes", "--model", tiny_export, "--jobs", 2
    )
    assert code == 1  # two of six failed; the others are written
    assert "encoded into" in out and "4 of 6 files; 2 failed" in out
    assert err.count("error:") == 2 and "broken.wav: unreadable" in err and "missing.wav: no such file" in err
    written = sorted(p.relative_to(tmp_path / "codes").as_posix() for p in (tmp_path / "codes").rglob("*.tcq"))
    assert written == ["a.tcq", "b.tcq", "extra.tcq", "sub/c.tcq"]
    assert not [p for p in (tmp_path / "codes").rglob("*") if p.name.startswith(".")]  # no temporary files
    # The same bytes as one file at a time.
    assert _run(capsys, "encode", clips / "sub" / "c.wav", tmp_path / "c.tcq", "--model", tiny_export)[0] == 0
    assert (tmp_path / "c.tcq").read_bytes() == (tmp_path / "codes" / "sub" / "c.tcq").read_bytes()

    code, out, _ = _run(
        capsys, "decode", tmp_path / "codes", tmp_path / "audio", "--model", tiny_export, "--format", "flac"
    )
    assert code == 0 and "decoded into" in out and "4 of 4 files" in out
    assert sorted(p.name for p in (tmp_path / "audio").rglob("*.flac")) == ["a.flac", "b.flac", "c.flac", "extra.flac"]


def test_a_fifo_or_dangling_link_in_a_batch_folder_is_listed_as_skipped_not_dropped(
    capsys, tmp_path, tiny_export, speech_wav
):
    clips = tmp_path / "clips"
    clips.mkdir()
    sf.write(clips / "a.wav", sf.read(speech_wav(seconds=0.3))[0], 16000)
    os.mkfifo(clips / "live.wav")  # reading it would block the batch forever
    (clips / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    code, out, err = _run(capsys, "encode", clips, tmp_path / "codes", "--model", tiny_export)
    assert code == 0 and "1 of 3 files; 2 skipped (listed above)" in out
    assert f"skipped {clips / 'live.wav'}: not a regular file (a FIFO)" in err
    assert f"skipped {clips / 'gone.wav'}: cannot be read" in err
    assert sorted(p.name for p in (tmp_path / "codes").iterdir()) == ["a.tcq"]


def test_a_batch_that_makes_no_plan_is_a_usage_error(capsys, tmp_path, tiny_export, speech_wav):
    one, two = speech_wav("one.wav", seconds=0.3), tmp_path / "other" / "one.wav"
    two.parent.mkdir()
    two.write_bytes(one.read_bytes())
    file_out = tmp_path / "taken.tcq"
    file_out.write_bytes(b"x")
    cases = [
        (("encode", one, two, tmp_path / "out"), "would both write"),
        (("encode", one, two, file_out), "need an output folder"),
        (("encode", tmp_path / "other", tmp_path / "codes", "--list", tmp_path / "nope.txt"), "--list"),
        (("decode", tmp_path / "other", tmp_path / "audio"), "no input files"),
    ]
    for argv, message in cases:
        code, _, err = _run(capsys, *argv, "--model", tiny_export)
        assert code == 2 and message in err, (argv, err)
    assert not (tmp_path / "out").exists() and file_out.read_bytes() == b"x"
