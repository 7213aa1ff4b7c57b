import math

import numpy as np
import pytest
import soundfile as sf

from codec.config.prepare import AudioOptions
from codec.data.audio import (
    AudioRejected,
    clip,
    decode,
    pcm16_to_float,
    peak_dbfs,
    process_file,
    remove_dc,
    resample,
    segment_bounds,
    to_mono,
    to_pcm16,
    trim_bounds,
)

SR = 16000
OPTS = AudioOptions(sample_rate=SR, min_seconds=0.5, max_seconds=3.0)


def tone(rate: int, seconds: float, freq: float = 1000.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.square(x, dtype=np.float64))))


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size), n=8 * x.size))
    k = int(np.argmax(spectrum))
    # Parabolic interpolation around the peak bin for sub-bin accuracy.
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / (8 * x.size)


@pytest.mark.parametrize("rate_in", [44100, 8000])
def test_resample_keeps_frequency_and_level(rate_in):
    x = tone(rate_in, 1.0)
    y = resample(x, rate_in, SR)
    assert y.dtype == np.float32 and abs(y.size - SR) <= 1
    inner_x, inner_y = x[rate_in // 10 : -rate_in // 10], y[SR // 10 : -SR // 10]  # skip filter edges
    assert abs(peak_frequency(inner_y, SR) - 1000.0) < 0.5
    assert abs(rms_db(inner_y) - rms_db(inner_x)) < 0.1


def test_resample_same_rate_is_identity():
    x = tone(SR, 0.1)
    assert resample(x, SR, SR) is x


@pytest.mark.parametrize(
    "subtype,rate,channels",
    [
        ("PCM_U8", 8000, 1),
        ("PCM_16", 22050, 2),
        ("PCM_24", 44100, 1),
        ("PCM_32", 48000, 2),
        ("FLOAT", 96000, 1),
        ("DOUBLE", 11025, 1),
    ],
)
def test_decode_formats_and_rates(tmp_path, subtype, rate, channels):
    x = tone(rate, 0.2)
    data = np.stack([x, 0.5 * x], axis=1) if channels == 2 else x
    path = tmp_path / "a.wav"
    sf.write(path, data, rate, subtype=subtype)
    decoded = decode(path)
    assert decoded.sample_rate == rate and decoded.samples.shape == (x.size, channels)
    tolerance = 0.01 if subtype == "PCM_U8" else 1e-3
    np.testing.assert_allclose(decoded.samples[:, 0], x, atol=tolerance)
    done = process_file(path, AudioOptions(sample_rate=SR, trim_silence=False, min_seconds=0.1))
    assert done.source_rate == rate and done.num_segments == 1
    assert abs(done.segments[0].pcm.size - 0.2 * SR) <= 1


def test_to_mono_averages_channels():
    stereo = np.array([[1.0, 0.0], [0.5, 0.5], [-1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(to_mono(stereo), [0.5, 0.5, -0.5])
    assert to_mono(stereo[:, :1]).shape == (3,)


def test_remove_dc_and_clip():
    x = tone(SR, 0.5) + np.float32(0.3)
    y = remove_dc(x)
    assert abs(float(y.mean())) < 1e-5
    assert float(np.max(np.abs(clip(y * 4)))) == 1.0
    assert peak_dbfs(np.zeros(4, np.float32)) == -math.inf
    assert abs(peak_dbfs(np.array([0.5], np.float32)) - 20 * math.log10(0.5)) < 1e-9


def test_trim_bounds_finds_the_sound():
    silence = np.zeros(SR // 2, np.float32)
    noise_floor = np.random.default_rng(0).standard_normal(SR // 2).astype(np.float32) * 1e-4
    x = np.concatenate([silence + noise_floor, tone(SR, 1.0), silence])
    start, end = trim_bounds(x, SR, top_db=40.0)
    frame = SR // 100
    assert abs(start - SR // 2) <= frame and abs(end - (SR // 2 + SR)) <= frame
    assert trim_bounds(np.zeros(100, np.float32), SR, 40.0) == (0, 0)
    # A lower top_db trims a quiet-but-present lead-in that 60 dB keeps.
    quiet = np.concatenate([tone(SR, 0.5, amp=0.005), tone(SR, 0.5)])
    assert trim_bounds(quiet, SR, 60.0)[0] == 0 and trim_bounds(quiet, SR, 20.0)[0] >= SR // 2 - frame


@pytest.mark.parametrize("n,limit", [(10, 10), (11, 10), (100, 7), (1, 5)])
def test_segment_bounds_cover_everything_in_equal_pieces(n, limit):
    bounds = segment_bounds(n, limit)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a2 == b1 for (_, b1), (a2, _) in zip(bounds, bounds[1:]))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) <= limit and max(sizes) - min(sizes) <= 1 and len(bounds) == math.ceil(n / limit)


def test_pcm16_round_trip():
    x = np.array([-1.0, -0.5, 0.0, 0.25, 1.0], np.float32)
    pcm = to_pcm16(x)
    assert pcm.dtype == np.int16 and pcm[0] == -32767 and pcm[-1] == 32767
    np.testing.assert_allclose(pcm16_to_float(pcm), x, atol=1 / 32767)


def test_long_file_is_cut_into_segments(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, tone(22050, 7.0), 22050)
    done = process_file(path, OPTS)
    assert done.num_segments == 3 and [s.index for s in done.segments] == [0, 1, 2]
    assert all(s.pcm.size <= 3.0 * SR for s in done.segments)
    assert sum(s.pcm.size for s in done.segments) == pytest.approx(7.0 * SR, abs=SR * 0.02)
    assert [s.offset for s in done.segments] == [
        0,
        done.segments[0].pcm.size,
        done.segments[0].pcm.size + done.segments[1].pcm.size,
    ]


def _write_bad(tmp_path, kind):
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "no-frames":
        sf.write(path, np.zeros(0, np.float32), SR)
    elif kind == "truncated":
        sf.write(path, tone(SR, 1.0), SR, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[: 44 + SR])
    elif kind == "header-only":
        sf.write(path, tone(SR, 1.0), SR)
        path.write_bytes(path.read_bytes()[:30])
    elif kind == "not-audio":
        path.write_text("this is a text file, not a RIFF/WAVE file\n" * 20)
    elif kind == "nan":
        x = tone(SR, 1.0)
        x[100:200] = np.nan
        sf.write(path, x, SR, subtype="FLOAT")
    elif kind == "silent":
        sf.write(path, np.zeros(SR, np.float32), SR)
    elif kind == "too-short":
        sf.write(path, tone(SR, 0.2), SR)
    elif kind == "missing":
        pass
    elif kind == "folder":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    "kind,reason",
    [
        ("empty", "empty"),
        ("folder", "not-a-file"),
        ("no-frames", "empty"),
        ("truncated", "truncated"),
        ("header-only", "unreadable"),
        ("not-audio", "unreadable"),
        ("nan", "non-finite"),
        ("silent", "silent"),
        ("too-short", "too-short"),
        ("missing", "missing"),
    ],
)
def test_bad_input_is_rejected_with_a_reason(tmp_path, kind, reason):
    with pytest.raises(AudioRejected) as info:
        process_file(_write_bad(tmp_path, kind), OPTS)
    assert info.value.reason == reason and str(info.value).startswith(reason)


def test_samples_beyond_full_scale_are_clipped_and_counted(tmp_path):
    opts = AudioOptions(sample_rate=SR, trim_silence=False)
    counted = {}
    for name, amp in [("loud", 3.0), ("fine", 0.5)]:  # a float file peaking at 3.0, and one within range
        sf.write(tmp_path / f"{name}.wav", tone(SR, 1.0, amp=amp), SR, subtype="FLOAT")
        done = process_file(tmp_path / f"{name}.wav", opts)
        counted[name] = done.clipped_samples
        peak = max(int(np.abs(s.pcm.astype(np.int32)).max()) for s in done.segments)
        assert (peak == 32767) is (name == "loud")
    assert counted["fine"] == 0 and counted["loud"] > SR // 2  # a 3x sine is beyond full scale 78% of the time


def test_trim_can_make_a_file_too_short(tmp_path):
    path = tmp_path / "blip.wav"
    sf.write(path, np.concatenate([np.zeros(SR, np.float32), tone(SR, 0.2), np.zeros(SR, np.float32)]), SR)
    with pytest.raises(AudioRejected, match="too-short"):
        process_file(path, OPTS)
    kept = process_file(path, AudioOptions(sample_rate=SR, trim_silence=False, min_seconds=0.5))
    assert kept.segments[0].pcm.size == int(2.2 * SR)


def test_stream_mono_matches_whole_file_processing(tmp_path):
    from codec.data.audio import clip, decode, resample, stream_mono, to_mono

    rng = np.random.default_rng(5)
    x = 0.5 * rng.standard_normal((44100 * 3 + 123, 2)).astype(np.float32)
    sf.write(tmp_path / "a.wav", x, 44100, subtype="FLOAT")
    stream = stream_mono(tmp_path / "a.wav", 16000, block_seconds=0.7)
    assert stream.source_rate == 44100
    streamed = np.concatenate(list(stream.pieces))
    whole = clip(resample(to_mono(decode(tmp_path / "a.wav").samples), 44100, 16000, "HQ"))
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() < 1e-3  # streaming and one-shot soxr round slightly differently
    sf.write(tmp_path / "b.wav", x[:, 0], 16000, subtype="FLOAT")  # no resampling: exactly equal
    assert np.array_equal(np.concatenate(list(stream_mono(tmp_path / "b.wav", 16000, 0.3).pieces)), clip(x[:, 0]))
    (tmp_path / "c.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioRejected, match="unreadable"):
        stream_mono(tmp_path / "c.wav", 16000)
