"""The Python API: encode and decode in a few lines, the same codes as the CLI and the tokenize stage."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from codec.api import TeluCodec
from codec.cli.main import main
from codec.formats.bitstream import read_bitstream
from codec.tokens.corpus import encode_segment
from tests.codec.conftest import speechlike


@pytest.fixture(scope="module")
def tc(tiny_export) -> TeluCodec:
    return TeluCodec.load(tiny_export)


def test_the_model_says_what_it_is(tc, tiny_codec):
    assert (tc.sample_rate, tc.hop_length, tc.num_levels) == (
        tiny_codec.sample_rate,
        tiny_codec.hop_length,
        tiny_codec.num_levels,
    )
    assert tc.frame_rate == tc.sample_rate / tc.hop_length
    assert tc.bitrate_kbps(1) == pytest.approx(np.log2(tc.codebook_size) * tc.frame_rate / 1000)
    assert tc.bitrate_kbps() == pytest.approx(tc.num_levels * tc.bitrate_kbps(1))
    assert tc.levels(kbps=tc.bitrate_kbps(2) + 0.01) == 2 and tc.levels() == tc.num_levels
    assert not tc.causal and tc.latency_ms is None and tc.model_id[:16] in repr(tc)
    with pytest.raises(ValueError, match="lowest bitrate"):
        tc.levels(kbps=tc.bitrate_kbps(1) / 2)


def test_codes_equal_the_clis_for_a_file_at_another_rate_and_channel_count(tc, tiny_export, tmp_path, capsys):
    """44.1 kHz stereo int16 in memory and in a WAV file: the API resamples and downmixes as the CLI reads."""
    audio = (speechlike(1.3, 44100, channels=2) * 20000).astype(np.int16)
    wav = tmp_path / "in.wav"
    sf.write(wav, audio, 44100, subtype="PCM_16")
    assert main(["encode", str(wav), str(tmp_path / "a.tcq"), "--model", str(tiny_export), "--levels", "2"]) == 0
    stream = read_bitstream(tmp_path / "a.tcq")
    cli_codes = stream.codes(tc.exported.probabilities)
    codes = tc.encode(audio, sample_rate=44100, levels=2)
    assert codes.shape == cli_codes.shape == (2, stream.header.num_frames)
    assert np.array_equal(codes, cli_codes)
    as_float = tc.encode(torch.from_numpy(sf.read(wav, dtype="float32")[0]), 44100, levels=2)  # tensors too
    assert np.array_equal(as_float, codes)
    capsys.readouterr()


def test_codes_equal_the_tokenize_stages_and_a_batch_equals_each_alone(tc):
    segments = [speechlike(s, tc.sample_rate)[:, 0] for s in (0.37, 1.0, 2.21)]
    batch = tc.encode(segments)
    assert isinstance(batch, list) and len(batch) == 3
    for segment, codes in zip(segments, batch):
        assert np.array_equal(codes, tc.encode(segment))
        assert np.array_equal(codes, encode_segment(tc.exported, segment, tc.num_levels))
        assert codes.shape == (tc.num_levels, -(-segment.shape[0] // tc.hop_length)) and codes.dtype == np.int64


def test_decode_gives_the_clis_audio_and_the_asked_length(tc, tiny_export, tmp_path, capsys):
    x = speechlike(1.0, tc.sample_rate)[:, 0]
    wav = tmp_path / "x.wav"
    sf.write(wav, x, tc.sample_rate, subtype="FLOAT")
    assert main(["encode", str(wav), str(tmp_path / "x.tcq"), "--model", str(tiny_export)]) == 0
    assert main(["decode", str(tmp_path / "x.tcq"), str(tmp_path / "y.wav"), "--model", str(tiny_export),
                 "--subtype", "FLOAT"]) == 0  # fmt: skip
    capsys.readouterr()
    codes = tc.encode(x)
    audio = tc.decode(codes, num_samples=x.shape[0])
    assert audio.dtype == np.float32 and audio.shape == x.shape
    assert np.array_equal(audio, sf.read(tmp_path / "y.wav", dtype="float32")[0])
    assert tc.decode(codes[:1]).shape == (codes.shape[1] * tc.hop_length,)  # fewer levels: a lower bitrate


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda tc: tc.encode(np.zeros(0)), "expected audio"),
        (lambda tc: tc.encode(np.zeros((3, 3, 3))), "expected audio"),
        (lambda tc: tc.encode(np.full(800, np.nan)), "NaN"),
        (lambda tc: tc.encode(np.zeros(800, np.uint8)), "signed integer"),
        (lambda tc: tc.encode(np.zeros(800), levels=99), "levels must be"),
        (lambda tc: tc.decode(np.zeros((1, 0), np.int64)), "expected codes"),
        (lambda tc: tc.decode(np.full((1, 4), 10**6)), "codes must be integers in"),
        (lambda tc: tc.decode(np.zeros((1, 4), np.float32)), "codes must be integers in"),
    ],
)
def test_bad_input_is_refused_with_a_reason(tc, call, message):
    with pytest.raises(ValueError, match=message):
        call(tc)


def test_a_shipped_model_loads_by_name():
    tc = TeluCodec.load()  # pretrained/telucodec-te
    assert tc.sample_rate == 16000 and tc.num_levels == 12 and tc.bitrate_kbps() == pytest.approx(6.0)
