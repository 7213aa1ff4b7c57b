"""Means per system: the whole summary (``reports/metrics.json``) and its headline scores (the DVC metrics).

Layout of the whole summary (keys are stable across runs so diffs line up)::

    <set>.utterances / .seconds
    <set>.codec.q<n>.{kbps, entropy_kbps, <metric>..., stoi_failed, pesq_wb_failed}
    <set>.opus.<k>kbps.{kbps, <metric>..., stoi_failed, pesq_wb_failed}
    <set>.quantizer.{nominal_kbps, entropy_kbps, perplexity.l<ii>, used_fraction.l<ii>}
    <set>.original.{utterances, dnsmos_*}           the unprocessed audio's DNSMOS (when scored)
    <set>.reference.<name>.q<n>.{kbps, entropy_kbps, <metric>...}   a reference codec on the same utterances
    <set>.reference.<name>.utterances

``<set>`` is ``test`` or an extra corpus' name. A reference codec (``evaluate --reference``, e.g. the shipped
pretrained one) is scored on ``test`` only, apart from ``codec``, and has no headline file (no DVC metric).
Means skip NaN scores (their count is the ``*_failed`` entry); a mean over no value is ``null``. The headline
scores (:func:`headline_scores`) are ``<set>/<kbps>kbps-<system>.json`` files with :data:`HEADLINE` means each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from codec.dsp import metrics as M
from codec.evaluation.run import ReferenceResult
from codec.evaluation.scoring import CODEC, DNSMOS_METRICS, METRICS, SetResult, System

FALLIBLE = ("stoi", "pesq_wb")  # external scores that can be undefined for an utterance


def system_means(result: SetResult, system: System) -> dict[str, float | None]:
    """Mean of every metric of ``system`` over the set, plus its bitrates and failure counts."""
    rows = [r for r in result.rows if r.system == system]
    out: dict[str, float | None] = {"kbps": system.kbps}
    if system.system == CODEC and result.counts is not None:
        out["entropy_kbps"] = M.entropy_kbps(result.counts, result.frame_rate, system.n_q)
    for name in METRICS:
        values = [r.values[name] for r in rows]
        out[name] = _mean_skipping_nan(values)
        if name in FALLIBLE:
            out[f"{name}_failed"] = int(np.isnan(values).sum())
    return out


def quantizer_summary(result: SetResult) -> dict[str, Any]:
    counts = result.counts
    assert counts is not None  # only called for a set with a code histogram
    levels = range(counts.shape[0])
    return {
        "nominal_kbps": M.nominal_kbps(counts.shape[0], counts.shape[1], result.frame_rate),
        "entropy_kbps": M.entropy_kbps(counts, result.frame_rate),
        "perplexity": dict(zip((f"l{i:02d}" for i in levels), M.perplexity(counts).tolist())),
        "used_fraction": dict(zip((f"l{i:02d}" for i in levels), M.used_fraction(counts).tolist())),
    }


def set_summary(result: SetResult) -> dict[str, Any]:
    rate = result.sample_rate
    out: dict[str, Any] = {
        "utterances": len(result.eval_set.utterances),
        "seconds": sum(u.audio.shape[0] for u in result.eval_set.utterances) / rate,
    }
    for system in result.systems:
        out.setdefault(system.system, {})[system.setting] = system_means(result, system)
    if result.counts is not None and result.eval_set.utterances:
        out["quantizer"] = quantizer_summary(result)
    if result.reference_dnsmos:  # the original audio's DNSMOS: the ceiling for every system's
        out["original"] = {"utterances": len(result.reference_dnsmos)} | {
            name: _mean_skipping_nan([r[name] for r in result.reference_dnsmos]) for name in DNSMOS_METRICS
        }
    return out


def _mean_skipping_nan(values: list[float]) -> float | None:
    """Mean of the scores that are not NaN (a failed or unscored utterance); None when there is none."""
    kept = np.asarray(values, dtype=np.float64)
    kept = kept[~np.isnan(kept)]
    return float(kept.mean()) if kept.size else None


def reference_summary(reference: ReferenceResult) -> dict[str, Any]:
    """``{utterances, q<n>: means}`` of a reference codec on its set."""
    result = reference.result
    return {"utterances": len(result.eval_set.utterances)} | {
        system.setting: system_means(result, system) for system in result.systems
    }


def metrics_summary(sets: list[SetResult], references: Sequence[ReferenceResult] = ()) -> dict[str, Any]:
    """The whole ``metrics.json`` document (NaN and inf become null: JSON has neither); ``references`` go under
    ``<set>.reference.<name>``.

    No timings: they differ from run to run and would break byte-identical rebuilds; the real-time
    factors go to their own file (:class:`codec.evaluation.report.ReportPaths` ``timings``)."""
    doc = {s.name: set_summary(s) for s in sets}
    for reference in references:
        doc[reference.set_name].setdefault("reference", {})[reference.name] = reference_summary(reference)
    return finite_json(doc)


# What decides a codec's quality as a listener hears it, whether the voice stays the speaker's (what TTS and
# speech-LM users check), plus the two ratios the field quotes: the DVC metrics.
HEADLINE = ("pesq_wb", "stoi", "mel_distance", "dnsmos_ovrl", "speaker_similarity", "snr_db", "si_snr_db")


def headline_name(kbps: float, system: str) -> str:
    """``06.00kbps-codec``: file names that sort by bitrate, the codec just before Opus at the same one."""
    return f"{kbps:05.2f}kbps-{system}"


def headline_scores(doc: dict[str, Any]) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{set: {headline_name: {metric: mean}}}`` from the :func:`metrics_summary` document.

    The DVC metrics: ``dvc metrics show`` prints one row per file and one column per key, so one small
    file per system and bitrate makes a table a terminal can hold, the codec at each bitrate beside Opus
    (the whole document, ~25 keys per system, would be hundreds of columns wide)."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for set_name, summary in doc.items():
        for system in ("codec", "opus"):
            for means in summary.get(system, {}).values():
                out.setdefault(set_name, {})[headline_name(means["kbps"], system)] = {
                    name: means[name] for name in HEADLINE
                }
    return out


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, recursively."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
