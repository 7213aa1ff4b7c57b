"""Write an :class:`~codec.evaluation.run.Evaluation` to disk.

Outputs (every file atomically; the two folders are built aside and swapped in whole, so no stale
example from an earlier run survives)::

    <metrics>                          the whole summary (layout in summary.py)
    <scores>/<set>/<kbps>kbps-<system>.json   headline scores, one file per system and bitrate (DVC metrics)
    <plots>/<set>_<system>.csv         rate-distortion data: setting, kbps[, entropy_kbps], metric means
    <out_dir>/utterances.csv           every score of every utterance and system
    <out_dir>/run.json                 what ran: model, device, Opus version, skipped inputs, score failures
    <out_dir>/figures/rate_distortion_<set>.png
    <out_dir>/examples/<set>/<nn>/{original,codec_q<n>,opus_<k>kbps}.wav, spectrogram.png
    <out_dir>/examples/test/<nn>/reference_<name>_q<n>.wav   a reference codec's (``evaluate --reference``)
    <html>                             the page (links relative to its own folder)
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import soundfile as sf
import torch

from codec.dsp import metrics as M
from codec.evaluation import figures, html
from codec.evaluation.run import Evaluation, ReferenceResult
from codec.evaluation.scoring import CODEC, METRICS, SetResult, System
from codec.evaluation.summary import finite_json, headline_scores, metrics_summary
from codec.runtime.io import atomic_path, write_json_atomic, write_text_atomic


@dataclass(frozen=True)
class ReportPaths:
    metrics: Path  # the whole summary JSON
    scores: Path  # folder of headline scores (DVC metrics), see summary.headline_scores
    plots: Path  # folder of rate-distortion CSVs (DVC plots)
    out_dir: Path  # per-utterance scores, run info, figures, example audio
    html: Path  # the page
    timings: Path  # real-time factors (json, and a .js beside it for the page): machine-dependent, so outside
    # the reproducible outputs
    tokens_stats: Path | None = None  # the tokenize stage's code statistics, shown on the page when given


def write_report(evaluation: Evaluation, paths: ReportPaths) -> dict[str, Any]:
    """Write every output; returns the metrics document."""
    doc = metrics_summary(evaluation.sets, evaluation.references)
    with replaced_dir(paths.plots) as plots:
        for result in evaluation.sets:
            for system, rows in rate_distortion(result, doc[result.name]).items():
                write_text_atomic(plots / f"{result.name}_{system}.csv", _csv(rows))
    with replaced_dir(paths.out_dir) as out:
        write_text_atomic(out / "utterances.csv", utterances_csv(evaluation.sets, evaluation.references))
        write_json_atomic(out / "run.json", finite_json(run_info(evaluation)))
        sections = [
            _write_set(
                result,
                doc[result.name],
                evaluation.sample_rate,
                out,
                _relative(paths.out_dir, paths.html.parent),
                [r for r in evaluation.references if r.set_name == result.name],
            )
            for result in evaluation.sets
        ]
    if paths.tokens_stats is not None:
        sections.append(html.tokens_section(json.loads(paths.tokens_stats.read_text(encoding="utf-8"))))
    write_text_atomic(
        paths.html, html.render_page(_page_info(evaluation), sections, _relative(paths.timings, paths.html.parent))
    )
    write_json_atomic(paths.metrics, doc)
    with replaced_dir(paths.scores) as scores:
        for set_name, files in headline_scores(doc).items():
            for name, values in files.items():
                write_json_atomic(scores / set_name / f"{name}.json", values)
    timing = evaluation.timing
    encode_rtf, decode_rtf = timing.rtf()
    speed = {
        "device": evaluation.device,
        "encode_rtf": encode_rtf,
        "decode_rtf": decode_rtf,
        "audio_seconds": timing.audio_seconds,
        "encode_seconds": timing.encode_seconds,
        "decode_seconds": timing.decode_seconds,
        # Wall times live here, never in a DVC output (run.json): two builds must give identical outputs.
        "reference_seconds": {r.name: r.seconds for r in evaluation.references},
    }
    write_json_atomic(paths.timings, speed)
    # The page shows them from a script beside it (a page opened from disk may load scripts, not fetch JSON).
    write_text_atomic(
        paths.timings.with_suffix(".js"), f"window.telucodecTimings = {json.dumps(finite_json(speed))};\n"
    )
    return doc


def rate_distortion(result: SetResult, summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """system -> rows (``setting``, ``kbps``, ``entropy_kbps`` for the codec, one mean per metric)."""
    curves: dict[str, list[dict[str, Any]]] = {}
    for system in result.systems:
        means = summary[system.system][system.setting]
        row = {"setting": system.setting, "kbps": system.kbps}
        if system.system == CODEC:
            row["entropy_kbps"] = means.get("entropy_kbps")
        row.update({name: means[name] for name in METRICS})
        curves.setdefault(system.system, []).append(row)
    return curves


def utterances_csv(sets: list[SetResult], references: list[ReferenceResult] | None = None) -> str:
    """Every score of every utterance; a reference codec's rows have system ``reference:<name>``."""
    rows = []
    named = [(result, None) for result in sets] + [(ref.result, ref.name) for ref in references or []]
    for result, reference in named:
        for r in result.rows:
            rows.append(
                {
                    "corpus": r.corpus,
                    "utterance": r.utterance,
                    "speaker": r.speaker or "",
                    "seconds": round(r.seconds, 4),
                    "system": r.system.system if reference is None else f"reference:{reference}",
                    "setting": r.system.setting,
                    "kbps": r.system.kbps,
                    **{k: _cell(v) for k, v in r.values.items()},
                    "errors": "; ".join(r.errors),
                }
            )
    return _csv(rows)


def run_info(evaluation: Evaluation) -> dict[str, Any]:
    """What ran and what was skipped (strings allowed: not read as DVC metrics)."""
    sets = {}
    for result in evaluation.sets:
        failures = Counter(error for row in result.rows for error in row.errors)
        sets[result.name] = {
            "utterances": len(result.eval_set.utterances),
            "available": result.eval_set.available,
            "skipped_files": result.eval_set.skipped,
            "opus_errors": result.opus_errors,
            "score_failures": dict(sorted(failures.items())),
            "entropy_bits_per_level": M.entropy_bits(result.counts).tolist() if result.counts is not None else [],
        }
    return {
        "model": evaluation.model,
        "device": evaluation.device,
        "torch": torch.__version__,
        "sample_rate": evaluation.sample_rate,
        "frame_rate": evaluation.frame_rate,
        "codebook_size": evaluation.codebook_size,
        "num_levels": evaluation.num_levels,
        "levels": evaluation.levels,
        "opus": evaluation.opus,
        "opus_available": evaluation.opus_available,
        "unavailable_corpora": evaluation.unavailable,
        "sets": sets,
        "references": {
            r.name: {
                "label": r.label,
                "set": r.set_name,
                "utterances": len(r.result.eval_set.utterances),
                "sample_rate": r.sample_rate,
                "num_levels": r.num_levels,
                "levels": r.levels,
            }
            for r in evaluation.references
        },
    }


@contextlib.contextmanager
def replaced_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty folder beside ``path``; on success it replaces ``path`` (old content removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield staging
        staging.chmod(0o777 & ~_umask())
        old = path.parent / f"{staging.name}.old"
        if path.exists():
            os.replace(path, old)
        os.replace(staging, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_set(
    result: SetResult,
    summary: dict[str, Any],
    sample_rate: int,
    out: Path,
    link: str,
    references: list[ReferenceResult] | None = None,
) -> str:
    """Figures and example audio of one set under ``out``; returns its HTML section (links via ``link``).

    ``references`` (scored on this set) get their rows in the summary table and players in the examples."""
    references = references or []
    name = result.name
    figure = Path("figures") / f"rate_distortion_{name}.png"
    figures.rate_distortion_figure(
        rate_distortion(result, summary), f"{name}: mean score against bitrate", out / figure
    )
    parts = [
        f"<h2>{escape(name)}</h2>",
        f"<p>{summary['utterances']} utterances, {summary['seconds']:.1f} s of audio.</p>",
        *(
            html.reference_note(ref.name, ref.label, len(ref.result.eval_set.utterances), ref.num_levels)
            for ref in references
        ),
        html.summary_table(summary, {ref.name: ref.label for ref in references}),
        f'<img class="rd" src="{_url(link, figure)}" alt="rate-distortion curves">',
    ]
    if "quantizer" in summary:
        assert result.counts is not None  # the summary has a quantizer part only with a code histogram
        parts += [
            "<h3>Quantizer code usage</h3>",
            html.quantizer_table(summary["quantizer"], M.entropy_bits(result.counts).tolist()),
        ]
    for index, example in enumerate(result.examples):
        folder = Path("examples") / name / f"{index:02d}"
        players = [("original", folder / "original.wav")]
        _write_wav(out / players[0][1], example.original, sample_rate)
        for system, audio in example.versions.items():
            players.append((system.label, folder / f"{_file_stem(system)}.wav"))
            _write_wav(out / players[-1][1], audio, sample_rate)
        for ref in references:  # its examples are the same first utterances (same ids, same order)
            if index < len(ref.result.examples) and ref.result.examples[index].utterance == example.utterance:
                for system, audio in ref.result.examples[index].versions.items():
                    players.append(
                        (
                            f"{html.MARK} {ref.name} {system.label}",
                            folder / f"reference_{ref.name}_{system.setting}.wav",
                        )
                    )
                    _write_wav(out / players[-1][1], audio, ref.sample_rate)
        figures.spectrogram_figure(example, sample_rate, out / folder / "spectrogram.png")
        parts.append(
            html.example_block(
                example.utterance,
                _url(link, folder / "spectrogram.png"),
                [(label, _url(link, p)) for label, p in players],
            )
        )
    return "\n".join(parts)


def _page_info(evaluation: Evaluation) -> dict[str, str]:
    info = {
        "model": evaluation.model,
        "device": evaluation.device,
        "audio": f"{evaluation.sample_rate} Hz, {evaluation.frame_rate:g} code frames/s",
        "quantizer": f"{evaluation.num_levels} levels x {evaluation.codebook_size} entries; scored with "
        f"{', '.join(map(str, evaluation.levels))} levels",
        "Opus baseline": evaluation.opus,
    }
    info.update({f"reference {r.name}": r.label for r in evaluation.references})
    info.update({f"corpus {name}": f"skipped: {why}" for name, why in evaluation.unavailable.items()})
    return info


def _file_stem(system: System) -> str:
    return f"{system.system}_{system.setting}"


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def _cell(value: float) -> Any:
    return "" if value is None or not np.isfinite(value) else round(float(value), 6)


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(target).resolve(), Path(start).resolve())).as_posix()


def _url(link: str, path: Path) -> str:
    return quote(f"{link}/{path.as_posix()}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
