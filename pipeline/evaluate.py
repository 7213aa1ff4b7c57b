"""Stage `evaluate`: score the trained codec at several bitrates against Opus; metrics, plots and a web page.

    python -m pipeline.evaluate --model models/codec.safetensors --shards data/shards \
        --metrics reports/metrics.json --scores reports/scores --plots reports/rate_distortion \
        --out-dir reports/eval --html reports/index.html \
        --reference pretrained/telucodec-te/telucodec-te.safetensors

``--reference`` (optional) scores a second codec, e.g. the shipped pretrained one, on the same test utterances:
its rows go beside the trained model's on the page and under ``test.reference.<name>`` in the metrics.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from codec.evaluation.report import ReportPaths, write_report
from codec.evaluation.run import Reference, run_evaluation
from codec.evaluation.sets import EvaluationError
from codec.formats.export import load_any_codec
from codec.formats.weights import WeightsError
from codec.runtime.interrupts import exit_cleanly
from pipeline.params import load_params

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"  # the shipped codecs (codec.cli.common's folder)


@exit_cleanly("evaluate")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="trained codec weights + config, or an export (safetensors)")
    parser.add_argument("--shards", required=True, help="prepared shard folder (its test split is scored)")
    parser.add_argument("--metrics", required=True, help="the whole summary JSON")
    parser.add_argument(
        "--scores", required=True, help="folder of headline scores, one JSON per system and bitrate (DVC metrics)"
    )
    parser.add_argument("--plots", required=True, help="folder of rate-distortion CSVs (DVC plots)")
    parser.add_argument("--out-dir", required=True, help="per-utterance scores, figures and example audio")
    parser.add_argument("--html", required=True, help="the report page")
    parser.add_argument(
        "--timings",
        default="reports/timings/evaluate.json",
        help="real-time factors (not a DVC output: they differ from run to run)",
    )
    parser.add_argument("--tokens-stats", help="the tokenize stage's code statistics, shown on the page")
    parser.add_argument(
        "--reference",
        help="a second codec (weights or export, e.g. the shipped pretrained one) scored on the same test "
        "utterances at evaluate.levels clipped to its levels, shown beside the model (no DNSMOS, no Opus)",
    )
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)

    torch.manual_seed(params.seed)
    try:
        codec = load_any_codec(args.model)
        reference = None if args.reference is None else load_reference(args.reference)
        evaluation = run_evaluation(
            codec,
            params.evaluate,
            args.shards,
            params.prepare.audio_options(codec.sample_rate),
            model_name=args.model,
            reference=reference,
        )
    except (WeightsError, EvaluationError) as exc:
        raise SystemExit(f"error: evaluate: {exc}") from None
    paths = ReportPaths(
        Path(args.metrics),
        Path(args.scores),
        Path(args.plots),
        Path(args.out_dir),
        Path(args.html),
        Path(args.timings),
        None if args.tokens_stats is None else Path(args.tokens_stats),
    )
    doc = write_report(evaluation, paths)
    best = f"q{evaluation.levels[-1]}"
    test = doc["test"]["codec"][best]
    print(
        f"evaluate: {doc['test']['utterances']} test utterances; codec {best} ({test['kbps']:g} kbps): "
        f"SNR {test['snr_db']:+.2f} dB, mel {test['mel_distance']:.3f}, PESQ {test['pesq_wb'] or float('nan'):.2f}; "
        f"encode x{evaluation.timing.rtf()[0]:.1f}, decode x{evaluation.timing.rtf()[1]:.1f} real time "
        f"on {evaluation.device} -> {args.html}"
    )
    for ref in evaluation.references:
        top = doc["test"]["reference"][ref.name][f"q{ref.levels[-1]}"]
        print(
            f"evaluate: reference {ref.label} q{ref.levels[-1]} ({top['kbps']:g} kbps): SNR {top['snr_db']:+.2f} dB, "
            f"mel {top['mel_distance']:.3f}, PESQ {top['pesq_wb'] or float('nan'):.2f}; scored in {ref.seconds:.1f} s"
        )


def load_reference(path: str | Path) -> Reference:
    """The codec in ``path`` as a :class:`Reference` named after the file; a ``provenance.json`` beside it (what
    ``scripts/ship_pretrained.py`` writes) gives its training steps for the page (all of them, for a model
    continued over several runs)."""
    path = Path(path)
    note = "reference"
    provenance = path.parent / "provenance.json"
    if provenance.is_file():
        record = json.loads(provenance.read_text(encoding="utf-8"))
        steps = record.get("total_steps", record.get("steps"))  # over every run it was continued through
        shipped = path.resolve().is_relative_to(PRETRAINED.resolve())
        note = ("shipped; trained on real speech" if shipped else "reference") + (
            f", {steps:,} steps" if isinstance(steps, int) else ""
        )
    return Reference(path.stem, load_any_codec(path), note)


if __name__ == "__main__":
    main()
