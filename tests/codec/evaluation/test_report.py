"""The written report: files, their consistency, relative links, and the page loading in headless Chromium."""

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from codec.evaluation.opus import find_opus_tools
from codec.evaluation.report import ReportPaths, replaced_dir, write_report
from codec.evaluation.run import Evaluation
from codec.evaluation.scoring import METRICS, Timing, evaluate_set
from codec.evaluation.sets import EvalSet, EvalUtterance
from codec.formats.weights import load_codec
from tests.codec.evaluation.support import RATE, speechlike

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
HAS_OPUS = shutil.which("opusenc") is not None and shutil.which("opusdec") is not None


@pytest.fixture(scope="module")
def report(tiny_codec_file, tmp_path_factory):
    """A report of the tiny codec on two utterances (one example each), Opus at 6 kbps when installed."""
    codec = load_codec(tiny_codec_file).eval()
    tools = find_opus_tools() if HAS_OPUS else None
    timing = Timing()
    sets = [
        evaluate_set(
            codec,
            EvalSet(name, [EvalUtterance(f"spk/{name}{i}", "s", speechlike(0.8, i)) for i in range(2)], 2),
            [1, 4],
            [6],
            tools,
            torch.device("cpu"),
            timing,
            examples=1,
        )
        for name in ("test", "extra-1")
    ]
    evaluation = Evaluation(
        "models/codec.safetensors",
        RATE,
        codec.frame_rate,
        32,
        4,
        [1, 4],
        "cpu",
        tools.version if tools else "skipped: no opus-tools",
        tools is not None,
        sets,
        timing,
        unavailable={"gone": "corpus directory x does not exist"},
    )
    root = tmp_path_factory.mktemp("report")
    paths = ReportPaths(
        root / "reports" / "metrics.json",
        root / "reports" / "scores",
        root / "reports" / "rd",
        root / "reports" / "eval",
        root / "reports" / "index.html",
        root / "reports" / "timings" / "evaluate.json",
    )
    doc = write_report(evaluation, paths)
    return paths, doc, evaluation


def test_metrics_plots_and_utterance_table_agree(report):
    paths, doc, evaluation = report
    on_disk = json.loads(paths.metrics.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert on_disk == doc and set(doc) == {"test", "extra-1"}
    timings = json.loads(paths.timings.read_text())
    assert timings["encode_seconds"] >= 0 and timings["audio_seconds"] > 0
    assert 'href="timings/evaluate.json"' in paths.html.read_text()
    script = paths.timings.with_suffix(".js").read_text()
    assert script.startswith("window.telucodecTimings = ") and json.loads(script[26:].rstrip(";\n")) == timings
    systems = {"codec", "opus"} if HAS_OPUS else {"codec"}
    assert sorted(p.name for p in paths.plots.iterdir()) == sorted(
        f"{s}_{x}.csv" for s in ("test", "extra-1") for x in systems
    )
    with open(paths.plots / "test_codec.csv", newline="") as f:
        curve = list(csv.DictReader(f))
    assert [r["setting"] for r in curve] == ["q1", "q4"]
    assert {"kbps", "entropy_kbps", *METRICS} <= set(curve[0])
    assert float(curve[1]["snr_db"]) == pytest.approx(doc["test"]["codec"]["q4"]["snr_db"])
    with open(paths.out_dir / "utterances.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * len(evaluation.sets[0].systems)
    q4 = [float(r["snr_db"]) for r in rows if r["corpus"] == "test" and r["setting"] == "q4"]
    assert sum(q4) / 2 == pytest.approx(doc["test"]["codec"]["q4"]["snr_db"], abs=1e-5)
    run = json.loads((paths.out_dir / "run.json").read_text())
    assert run["unavailable_corpora"] == {"gone": "corpus directory x does not exist"}
    assert run["opus_available"] is HAS_OPUS and len(run["sets"]["test"]["entropy_bits_per_level"]) == 4


def test_headline_scores_are_one_small_file_per_system_and_bitrate(report):
    paths, doc, evaluation = report
    from codec.evaluation.summary import HEADLINE

    files = sorted(p.relative_to(paths.scores).as_posix() for p in paths.scores.rglob("*.json"))
    codec_kbps = [doc["test"]["codec"][f"q{n}"]["kbps"] for n in evaluation.levels]
    opus_kbps = [m["kbps"] for m in doc["test"].get("opus", {}).values()]
    expected = sorted(
        [f"{s}/{k:05.2f}kbps-codec.json" for s in ("test", "extra-1") for k in codec_kbps]
        + [f"{s}/{k:05.2f}kbps-opus.json" for s in ("test", "extra-1") for k in opus_kbps]
    )
    assert files == expected
    # Sorted by name is sorted by bitrate (0.5 before 6 before 12), the codec just before Opus at a tie.
    names = [p.name for p in sorted((paths.scores / "test").iterdir())]
    kbps = [float(n.split("kbps")[0]) for n in names]
    assert kbps == sorted(kbps)
    top = json.loads((paths.scores / "test" / f"{codec_kbps[-1]:05.2f}kbps-codec.json").read_text())
    assert set(top) == set(HEADLINE)
    assert top == {name: doc["test"]["codec"][f"q{evaluation.levels[-1]}"][name] for name in HEADLINE}


def test_page_links_are_relative_and_point_at_written_files(report):
    paths, _, _ = report
    page = paths.html.read_text()
    links = re.findall(r'src="([^"]+)"', page)
    assert len(links) == 1 + 2 * (1 + 1 + (4 if HAS_OPUS else 3))  # speed script; per set: curves, spectrogram, players
    for link in links:
        assert not link.startswith(("/", "file:", "http")), link
        assert (paths.html.parent / link).is_file(), link
    assert "gone" in page and "corpus directory x does not exist" in page
    assert page.count('<table class="summary">') == 2


def test_replaced_dir_drops_stale_files_and_keeps_the_old_folder_on_failure(tmp_path):
    target = tmp_path / "out"
    with replaced_dir(target) as d:
        (d / "old.txt").write_text("1")
    with replaced_dir(target) as d:
        (d / "new.txt").write_text("2")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    with pytest.raises(RuntimeError), replaced_dir(target) as d:
        (d / "half.txt").write_text("3")
        raise RuntimeError("crash")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left behind


def _chromium_dom(page: Path, profile: Path) -> subprocess.Popen:
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _media(dom: str) -> list[tuple[str, str]]:
    """(tag, data-loaded) of every img and audio element of a dumped DOM."""
    return [
        (m.group(1), (re.search(r'data-loaded="(\w+)"', m.group(0)) or [None, "missing"])[1])
        for m in re.finditer(r"<(img|audio)\b[^>]*>", dom)
    ]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (`apt-get install chromium`): page not loaded")
def test_page_loads_in_headless_chromium_with_every_image_and_audio(report, tmp_path):
    paths, _, _ = report
    # A copy with one file missing must show as an error: the check can fail.
    broken = tmp_path / "broken"
    shutil.copytree(paths.html.parent, broken)
    missing = next((broken / "eval" / "examples").rglob("codec_q1.wav"))
    missing.unlink()
    good, bad = (
        _chromium_dom(page, tmp_path / f"profile-{i}") for i, page in enumerate((paths.html, broken / "index.html"))
    )
    good_dom, bad_dom = (p.communicate(timeout=120)[0] for p in (good, bad))
    assert '<table class="summary">' in good_dom and "TeluCodec evaluation" in good_dom
    speed = re.search(r'<table class="info" id="speed" data-speed="(\w+)">(.*?)</table>', good_dom, re.S)
    assert speed.group(1) == "shown" and re.search(r"decode</td><td>x[\d.]+ real time", speed.group(2))
    media = _media(good_dom)
    assert len(media) == len(re.findall(r"<(?:img|audio)\b", paths.html.read_text())) >= 6
    assert media == [(tag, "ok") for tag, _ in media], media
    assert sorted(state for _, state in _media(bad_dom)) == ["error"] + ["ok"] * (len(media) - 1)
    assert os.path.exists(paths.html)
