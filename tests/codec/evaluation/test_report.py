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
from codec.evaluation.run import Evaluation, ReferenceResult
from codec.evaluation.scoring import METRICS, Timing, evaluate_set
from codec.evaluation.sets import EvalSet, EvalUtterance
from codec.formats.weights import load_codec
from tests.codec.evaluation.support import RATE, speechlike, tiny_codec

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
    # A reference codec (another tiny codec, 2 levels) on the test set's utterances, no Opus, as run_evaluation does.
    reference = tiny_codec(seed=1, num_levels=2)
    reference_result = evaluate_set(
        reference, sets[0].eval_set, [1, 2], [], None, torch.device("cpu"), Timing(), examples=1
    )
    references = [
        ReferenceResult(
            "ref-tiny", "shipped; a test reference, 9 steps", "test", RATE, 2, [1, 2], reference_result, 1.0
        )
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
        references=references,
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
    assert len(rows) == 2 * 2 * len(evaluation.sets[0].systems) + 2 * 2  # + the reference's 2 levels on test
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
    # speed script; per set: curves, spectrogram, players; the reference's 2 players on test
    assert len(links) == 1 + 2 * (1 + 1 + (4 if HAS_OPUS else 3)) + 2
    for link in links:
        assert not link.startswith(("/", "file:", "http")), link
        assert (paths.html.parent / link).is_file(), link
    assert "gone" in page and "corpus directory x does not exist" in page
    assert page.count('<table class="summary">') == 2


def test_a_references_rows_are_on_the_same_utterances_apart_from_the_codec_and_on_the_page(report):
    paths, doc, evaluation = report
    (ref,) = evaluation.references
    means = doc["test"]["reference"]["ref-tiny"]
    assert sorted(means) == ["q1", "q2", "utterances"] and means["utterances"] == 2
    assert means["q2"]["kbps"] == 0.5 and means["q2"]["snr_db"] is not None and means["q2"]["dnsmos_ovrl"] is None
    assert sorted(doc["test"]["codec"]) == ["q1", "q4"] and "reference" not in doc["extra-1"]
    with open(paths.out_dir / "utterances.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ours = [r["utterance"] for r in rows if r["corpus"] == "test" and r["system"] == "codec" and r["setting"] == "q1"]
    theirs = [r["utterance"] for r in rows if r["system"] == "reference:ref-tiny" and r["setting"] == "q2"]
    assert theirs == ours and len(ours) == 2
    mean = sum(float(r["snr_db"]) for r in rows if r["system"] == "reference:ref-tiny" and r["setting"] == "q2") / 2
    assert mean == pytest.approx(means["q2"]["snr_db"], abs=1e-5)
    run = json.loads((paths.out_dir / "run.json").read_text())
    assert run["references"]["ref-tiny"]["levels"] == [1, 2] and run["references"]["ref-tiny"]["utterances"] == 2
    page = paths.html.read_text()
    test_section, extra_section = page.split("<h2>extra-1</h2>")
    assert "★ ref-tiny (shipped; a test reference, 9 steps)" in test_section
    assert (
        "★ rows: <b>ref-tiny (shipped; a test reference, 9 steps)</b>, a reference codec scored on the same 2" in page
    )
    assert test_section.count('<tr class="reference">') == 2 and "★ ref-tiny q2" in test_section
    assert "ref-tiny" not in extra_section.split("<h2>")[0]  # scored on the test split only
    # Its rows sit between this run's codec and Opus; its players beside the codec's in the test examples.
    assert test_section.index("codec q4") < test_section.index("★ ref-tiny q1")
    if HAS_OPUS:
        assert test_section.index("★ ref-tiny q2") < test_section.index("opus 6kbps")
    assert (paths.out_dir / "examples" / "test" / "00" / "reference_ref-tiny_q2.wav").is_file()


def test_the_page_without_a_reference_has_no_reference_rows(report, tmp_path):
    from codec.evaluation.html import summary_table
    from codec.evaluation.summary import metrics_summary

    _, _, evaluation = report
    doc = metrics_summary(evaluation.sets)
    assert "reference" not in doc["test"]
    table = summary_table(doc["test"])
    assert "★" not in table and 'class="group' not in table and table.count('<tr class="codec">') == 2


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
        "--window-size=1300,900",
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


# Appended to a copy of the page: how far the page is wider than the 1,300 px window (0: it fits).
OVERFLOW = (
    "<script>document.body.dataset.overflow = "
    "String(document.documentElement.scrollWidth - document.documentElement.clientWidth);</script></body>"
)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (`apt-get install chromium`): page not loaded")
def test_the_page_fits_1300_px_the_wide_table_scrolling_in_its_own_box(report, tmp_path):
    """The summary table with every metric overflowed a 1,300 px window (issue 31): its headers now wrap and
    it scrolls inside its own box. The page as it was (headers unwrapped, no box) must overflow: the check can fail."""
    paths, _, _ = report
    page = paths.html.read_text()
    fits = paths.html.parent / "fits.html"
    fits.write_text(page.replace("</body>", OVERFLOW))
    old = paths.html.parent / "old.html"
    old_page = page.replace('<div class="wide">', "<div>").replace("_<wbr>", "_").replace(".wide table", ".x")
    old.write_text(old_page.replace("</body>", OVERFLOW).replace("font-size: 0.8em", "font-size: 0.9em"))
    try:
        runs = [_chromium_dom(p, tmp_path / f"profile-{i}") for i, p in enumerate((fits, old))]
        doms = [p.communicate(timeout=120)[0] for p in runs]
    finally:
        fits.unlink()
        old.unlink()
    overflow = [int(re.search(r'<body data-overflow="(-?\d+)"', dom).group(1)) for dom in doms]
    assert overflow[0] <= 0 and overflow[1] > 0, overflow
