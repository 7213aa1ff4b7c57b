"""The Opus baseline: round trip through opusenc/opusdec, alignment, and a clear skip without the tools."""

import shutil

import numpy as np
import pytest
import torch

from codec.dsp.metrics import snr
from codec.evaluation.opus import OpusError, OpusTools, OpusUnavailable, align, find_opus_tools, opus_round_trip
from tests.codec.evaluation.support import RATE, speechlike

needs_opus = pytest.mark.skipif(
    shutil.which("opusenc") is None or shutil.which("opusdec") is None,
    reason="opus-tools (opusenc, opusdec) not installed: `apt-get install opus-tools`",
)


def _lag(reference: np.ndarray, estimate: np.ndarray, max_lag: int = 400) -> int:
    """The shift (samples) that best aligns ``estimate`` with ``reference``: > 0 means it lags behind."""
    lags = range(-max_lag, max_lag + 1)
    n = reference.shape[0]
    scores = [np.dot(reference[max(0, -k) : n - max(0, k)], estimate[max(0, k) : n - max(0, -k)]) for k in lags]
    return lags[int(np.argmax(scores))]


@needs_opus
def test_round_trip_keeps_length_and_alignment_and_improves_with_bitrate():
    tools = find_opus_tools()
    assert "opus" in tools.version.lower()
    x = speechlike(1.0)
    # A click train on top: sharp peaks make the cross-correlation unambiguous.
    x[::1600] += 0.5
    # 6 kbps is SILK, 12 and 24 hybrid, 64 CELT: each mode has its own residual delay to remove.
    decoded = {kbps: opus_round_trip(x, RATE, kbps, tools) for kbps in (6, 12, 24, 64)}
    for kbps, y in decoded.items():
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert _lag(x, y) == 0, kbps
    quality = {k: float(snr(torch.from_numpy(x), torch.from_numpy(y))) for k, y in decoded.items()}
    assert quality[64] > quality[24] > quality[6] and quality[24] > 5.0


def test_align_undoes_a_known_shift_either_way():
    x = speechlike(0.3)
    for shift in (-3, 0, 2):
        moved = np.roll(x, shift)
        aligned = align(x, moved, 4)
        assert _lag(x, aligned, 10) == 0
        inner = slice(5, -5)
        np.testing.assert_array_equal(aligned[inner], x[inner])


@needs_opus
def test_round_trip_of_other_rates_returns_that_rate():
    x = speechlike(0.5, rate=22050)
    y = opus_round_trip(x, 22050, 12, find_opus_tools())
    assert y.shape == x.shape and _lag(x, y) == 0


def test_missing_tools_are_reported_with_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OpusUnavailable, match="opusenc and opusdec not found.*opus-tools"):
        find_opus_tools()


def test_a_failing_encoder_raises_opus_error():
    false = shutil.which("false") or "/bin/false"
    with pytest.raises(OpusError, match="false failed"):
        opus_round_trip(speechlike(0.1), RATE, 6, OpusTools(false, false, "none"))
