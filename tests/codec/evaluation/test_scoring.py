"""Scoring the codec and Opus on a set: per-utterance scores, code histograms, timing and the summary."""

import math
import shutil

import numpy as np
import pytest
import torch

from codec.dsp import metrics as M
from codec.evaluation.opus import OpusTools, find_opus_tools
from codec.evaluation.scoring import (
    CODEC,
    METRICS,
    OPUS,
    System,
    Timing,
    evaluate_set,
    example_systems,
    opus_system,
    score,
)
from codec.evaluation.sets import EvalSet, EvalUtterance
from codec.evaluation.summary import finite_json, metrics_summary
from codec.formats.weights import load_codec
from tests.codec.evaluation.support import RATE, speechlike


@pytest.fixture(scope="module")
def codec(tiny_codec_file):
    return load_codec(tiny_codec_file).eval()


def _set(count=2, seconds=0.7):
    utts = [EvalUtterance(f"u{i}", f"s{i % 2}", speechlike(seconds + 0.13 * i, seed=i)) for i in range(count)]
    return EvalSet("test", utts, available=count)


def _tools():
    if shutil.which("opusenc") is None or shutil.which("opusdec") is None:
        return None
    return find_opus_tools()


def test_codec_scores_are_those_of_its_decoded_audio(codec):
    data = _set()
    timing = Timing()
    result = evaluate_set(codec, data, [1, 4], [], None, torch.device("cpu"), timing, examples=1)
    assert [s.setting for s in result.systems] == ["q1", "q4"]
    assert [s.kbps for s in result.systems] == [0.25, 1.0]  # 5 bits x 50 frames/s per level
    assert len(result.rows) == 4
    for row in result.rows:
        x = next(u.audio for u in data.utterances if u.id == row.utterance)
        with torch.no_grad():
            codes = codec.encode(torch.from_numpy(x).view(1, 1, -1), 4)
            y = codec.decode(codes[:, : row.system.n_q])[0, 0, : x.shape[0]]
        xt = torch.from_numpy(x)
        assert row.values["snr_db"] == pytest.approx(float(M.snr(xt, y)), abs=1e-3)
        assert row.values["mel_distance"] == pytest.approx(float(M.multiscale_mel_distance(xt, y, RATE)), rel=1e-4)
        assert set(row.values) == set(METRICS) and row.seconds == pytest.approx(x.shape[0] / RATE)
    # Different level counts decode differently: the scores must not be copies of each other.
    assert result.rows[0].values["snr_db"] != result.rows[1].values["snr_db"]

    expected = sum(
        M.code_histograms(codec.encode(torch.from_numpy(u.audio).view(1, 1, -1), 4), 32) for u in data.utterances
    )
    torch.testing.assert_close(result.counts, expected)
    assert float(M.entropy_bits(result.counts)[0]) > 0  # fitted codebooks: several entries in use
    assert timing.audio_seconds == pytest.approx(sum(u.audio.shape[0] for u in data.utterances) / RATE)
    assert timing.encode_seconds > 0 and timing.decode_seconds > 0 and all(r > 0 for r in timing.rtf())
    assert len(result.examples) == 1 and result.examples[0].utterance == "u0"
    assert [s.setting for s in result.examples[0].versions] == ["q4", "q1"]


@pytest.mark.skipif(_tools() is None, reason="opus-tools not installed: `apt-get install opus-tools`")
def test_opus_rows_come_with_the_codec_rows(codec):
    result = evaluate_set(codec, _set(1, 1.0), [4], [6, 24], _tools(), torch.device("cpu"), Timing(), examples=1)
    opus = {r.system.setting: r.values for r in result.rows if r.system.system == OPUS}
    assert set(opus) == {"6kbps", "24kbps"}
    assert opus["24kbps"]["snr_db"] > opus["6kbps"]["snr_db"]
    assert opus["24kbps"]["pesq_wb"] > opus["6kbps"]["pesq_wb"]
    assert [s.setting for s in result.examples[0].versions] == ["q4", "6kbps"]  # Opus nearest to 1 kbps


def test_a_failing_opus_round_trip_gives_nan_rows_and_keeps_the_codec(codec):
    false = shutil.which("false") or "/bin/false"
    result = evaluate_set(
        codec, _set(1), [4], [6], OpusTools(false, false, "broken"), torch.device("cpu"), Timing(), examples=1
    )
    rows = {r.system.system: r for r in result.rows}
    assert all(math.isnan(v) for v in rows[OPUS].values.values()) and rows[OPUS].errors == ["opus: round trip failed"]
    assert math.isfinite(rows[CODEC].values["snr_db"])
    assert len(result.opus_errors) == 1 and "false failed" in result.opus_errors[0]
    summary = metrics_summary([result])
    assert summary["test"]["opus"]["6kbps"]["snr_db"] is None
    assert summary["test"]["opus"]["6kbps"]["pesq_wb_failed"] == 1


def test_speaker_similarity_of_every_system_when_asked(codec):
    from codec.evaluation.speaker import speaker_encoder_available, speaker_similarities

    if speaker_encoder_available() is not None:
        pytest.skip(f"speaker encoder unavailable: {speaker_encoder_available()}")
    data = _set(1, 1.5)
    off = evaluate_set(codec, data, [1, 4], [], None, torch.device("cpu"), Timing())
    assert all(math.isnan(r.values["speaker_similarity"]) and r.errors == [] for r in off.rows)
    on = evaluate_set(codec, data, [1, 4], [], None, torch.device("cpu"), Timing(), speaker_similarity=True)
    x = data.utterances[0].audio
    with torch.no_grad():
        codes = codec.encode(torch.from_numpy(x).view(1, 1, -1), 4)
        ys = [codec.decode(codes[:, :n])[0, 0, : x.shape[0]].numpy() for n in (1, 4)]
    expected = speaker_similarities(x, ys, RATE)
    for row, want in zip(on.rows, expected):
        assert row.values["speaker_similarity"] == pytest.approx(want.value, abs=1e-5)
        assert 0 < row.values["speaker_similarity"] <= 1
    assert metrics_summary([on])["test"]["codec"]["q4"]["speaker_similarity"] == pytest.approx(expected[1].value)


def test_summary_layout_means_and_failures(codec):
    result = evaluate_set(codec, _set(2), [1, 4], [], None, torch.device("cpu"), Timing())
    result.rows[0].values["pesq_wb"] = math.nan  # as when PESQ finds no utterance
    doc = metrics_summary([result])
    test = doc["test"]
    assert test["utterances"] == 2 and set(test) == {"utterances", "seconds", "codec", "quantizer"}
    q1 = test["codec"]["q1"]
    rows = [r for r in result.rows if r.system.setting == "q1"]
    assert q1["snr_db"] == pytest.approx(np.mean([r.values["snr_db"] for r in rows]))
    assert q1["pesq_wb"] == pytest.approx(rows[1].values["pesq_wb"]) and q1["pesq_wb_failed"] == 1
    assert q1["kbps"] == 0.25 and 0 < q1["entropy_kbps"] <= 0.25
    assert test["codec"]["q4"]["entropy_kbps"] == pytest.approx(test["quantizer"]["entropy_kbps"])
    assert sorted(test["quantizer"]["perplexity"]) == ["l00", "l01", "l02", "l03"]
    assert all(0 < v <= 1 for v in test["quantizer"]["used_fraction"].values())
    assert set(doc) == {"test"}  # no timings: metrics.json must be identical across rebuilds


def test_score_batches_like_single_calls():
    x = speechlike(0.6)
    noisy = [x + 0.01 * np.random.default_rng(s).standard_normal(x.size).astype(np.float32) for s in range(2)]
    both = score(x, noisy, RATE)
    for (values, errors), y in zip(both, noisy):
        assert errors == []
        assert values["lsd_db"] == pytest.approx(
            float(M.log_spectral_distance(torch.from_numpy(x), torch.from_numpy(y))), rel=1e-5
        )
        assert values["stoi"] == pytest.approx(M.stoi(x, y, RATE).value)


def test_example_systems_pick_extreme_codec_rates_and_the_nearest_opus():
    codec_systems = [System(CODEC, f"q{n}", 0.5 * n, n_q=n) for n in (1, 4, 12)]
    opus = [opus_system(k) for k in (6, 8, 12)]
    assert [s.setting for s in example_systems(codec_systems + opus)] == ["q12", "q1", "6kbps"]
    assert [s.setting for s in example_systems(codec_systems)] == ["q12", "q1"]
    assert finite_json({"a": [math.nan, 1.0], "b": {"c": -math.inf}}) == {"a": [None, 1.0], "b": {"c": None}}


def test_dnsmos_on_the_picked_utterances_of_every_system_and_the_original(codec):
    from codec.evaluation.dnsmos import dnsmos, dnsmos_available
    from codec.evaluation.scoring import DNSMOS_METRICS, spread_indices

    if dnsmos_available() is not None:
        pytest.skip(f"DNSMOS unavailable: {dnsmos_available()}")
    assert spread_indices(10, 3) == {0, 4, 9} and spread_indices(2, 5) == {0, 1} and spread_indices(5, 0) == set()
    data = _set(2)
    result = evaluate_set(codec, data, [4], [], None, torch.device("cpu"), Timing(), jobs=2, dnsmos_utterances=1)
    picked, other = result.rows  # one system: one row per utterance
    assert all(math.isnan(other.values[name]) for name in DNSMOS_METRICS) and other.errors == []
    with torch.no_grad():
        x = data.utterances[0].audio
        y = codec.decode(codec.encode(torch.from_numpy(x).view(1, 1, -1), 4))[0, 0, : x.shape[0]].numpy()
    expected = dnsmos(np.clip(y, -1, 1), RATE)
    assert picked.values["dnsmos_ovrl"] == pytest.approx(expected.ovrl, abs=1e-5)
    assert picked.values["dnsmos_p808"] == pytest.approx(expected.p808_mos, abs=1e-5)
    assert result.reference_dnsmos[0]["dnsmos_sig"] == pytest.approx(dnsmos(x, RATE).sig, abs=1e-5)
    doc = metrics_summary([result])["test"]
    assert doc["codec"]["q4"]["dnsmos_ovrl"] == pytest.approx(expected.ovrl, abs=1e-5)  # NaNs skipped
    assert doc["original"]["utterances"] == 1 and 1 < doc["original"]["dnsmos_ovrl"] < 5
