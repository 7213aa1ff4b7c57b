"""How good a codec does each training recipe give for the same compute? Side by side with Opus.

    python -m experiments.recipe_budget [--corpus ../shared/corpora/chai-bisket-te --format ulca]
        [--recipes today cpu ...] [--budget-minutes 30 | --budget-steps N]
        [--work /tmp/telucodec-recipes] [--out docs/recipes] [--extra-corpus DIR [--extra-format F]]
        [--params params.yaml [more.yaml ...]] [--recipe-dir workflow/recipes] [--max-utterances N]

A recipe is a params override file, ``workflow/recipes/<name>.yaml`` (merged over params.yaml, or over the
``--params`` files merged in order). For each
recipe the benchmark runs the pipeline's own stage commands on the corpus: ``prepare`` (once, shared),
``seed_codebooks``, ``train`` and ``evaluate``. Every recipe gets the same training budget in wall time on
this machine: a short calibration run of the train stage measures the recipe's seconds per step without
and with its discriminator, and the step count is the most that fits ``--budget-minutes``
(``--budget-steps`` fixes the steps instead, for quick checks). The wall time and examples/s actually taken
are printed and kept.

Each trained codec is scored on the corpus's speaker-disjoint test split at 1.5, 3 and 6 kbps (3, 6 and 12 of
cpu-handover's levels: ``table_levels``) with the evaluate stage's metrics, next to Opus at 6, 8 and 12 kbps on
the same utterances, and its average output spectrum is compared with the input's (narrow peaks, DC, top band:
``codec.evaluation.spectrum``). The table goes to ``<out>/results.{json,md}``,
``<out>/rate_distortion.png`` and ``<out>/spectra.png``, ``<out>`` being ``--out``/<budget>. Run it when nothing
else uses the CPU: two jobs on 2 cores halve each
other's steps. Re-running resumes: finished stages of a recipe and budget are kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codec.config.quantizer import raw_kbps
from codec.evaluation.spectrum import BAND_LIMIT_DB, HIGH_BAND_LIMIT_DB, RIPPLE_LIMIT_DB
from codec.runtime.io import atomic_path, write_json_atomic, write_text_atomic
from experiments.stage_runs import (
    ROOT,
    evaluate_args,
    load_yaml,
    prepare_args,
    run_stage,
    seed_args,
    train_args,
    write_params,
)
from pipeline.params import merge_params as merge
from pipeline.params import params_from_dict

RECIPES = ROOT / "workflow" / "recipes"
SEED_SECTIONS = ("seed", "sample_rate", "model", "quantizer", "seed_codebooks")  # what seed_codebooks reads
TABLE_KBPS = [1.5, 3.0, 6.0]  # the run table's columns (docs/recipes/)
FALLBACK_LEVELS = [3, 6, 12]  # 50 frames/s x 10 bits' counts for them, for a codec that codes none of them exactly
OPUS_KBPS = [6, 8, 12]
METRICS = [
    ("snr_db", "SNR dB", "{:+.2f}"),
    ("si_snr_db", "SI-SNR dB", "{:+.2f}"),
    ("mel_distance", "mel dist", "{:.3f}"),
    ("stoi", "STOI", "{:.3f}"),
    ("pesq_wb", "PESQ-WB", "{:.2f}"),
    ("entropy_kbps", "coded kbps", "{:.2f}"),
]


def recipe_names(recipe_dir: Path, requested: list[str] | None) -> list[str]:
    available = sorted(p.stem for p in recipe_dir.glob("*.yaml"))
    names = requested or available
    missing = [n for n in names if n not in available]
    if missing or not names:
        raise SystemExit(f"error: no recipe {missing or ''} in {recipe_dir} (have {available})")
    return names


def base_params(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for path in args.params:
        data = merge(data, load_yaml(path))
    data["prepare"] = {**data["prepare"], "corpus": str(args.corpus.resolve()), "format": args.format}
    extra = [
        {
            "name": re.sub(r"[^A-Za-z0-9_-]", "-", Path(d).resolve().name) or "extra",
            "path": str(Path(d).resolve()),
            "format": args.extra_format,
            "max_utterances": args.max_utterances,
        }
        for d in args.extra_corpus
    ]
    data["evaluate"] = {
        **data["evaluate"],
        "opus_kbps": OPUS_KBPS,
        "max_utterances": args.max_utterances,
        "extra_corpora": extra,
        "examples": 2,
        "dnsmos_utterances": args.dnsmos_utterances,
    }
    return data


def recipe_params(base: dict[str, Any], recipe_dir: Path, name: str) -> dict[str, Any]:
    recipe = load_yaml(recipe_dir / f"{name}.yaml")
    for section in ("prepare", "sample_rate", "evaluate", "synth"):
        if section in recipe:
            raise SystemExit(f"error: recipe {name}: '{section}' is the benchmark's, not a recipe's, to set")
    data = merge(base, recipe)
    data["evaluate"] = {**data["evaluate"], "levels": table_levels(data)}
    return data


def table_levels(data: dict[str, Any]) -> list[int]:
    """The level counts that code the table's rates exactly with a recipe's codec: 3, 6 and 12 of cpu-handover's
    10-bit levels at 50 frames/s; 2 and 4 of lowrate-62hz-4096's 12-bit levels at 62.5 frames/s. A codec that
    codes none of them in whole levels (a test's tiny one) is scored at ``FALLBACK_LEVELS``, clipped to its own."""
    params = params_from_dict(data)
    level_kbps = raw_kbps(1, params.quantizer.codebook_size, params.sample_rate / params.model.hop_length)
    counts = [kbps / level_kbps for kbps in TABLE_KBPS]
    exact = [round(n) for n in counts if n.is_integer() and n <= params.quantizer.num_levels]
    return exact or sorted({min(n, params.quantizer.num_levels) for n in FALLBACK_LEVELS})


def seed_path(work: Path, data: dict[str, Any]) -> Path:
    """Where a recipe's seeded codebooks live under ``work``: recipes (and gpu_check's code-path run) that
    differ only in training share one seed, keyed by what seed_codebooks reads."""
    key = hashlib.sha256(json.dumps({k: data[k] for k in SEED_SECTIONS}, sort_keys=True).encode()).hexdigest()[:16]
    return work / "seeds" / f"{key}.safetensors"


def init_weights(
    export: Path, work: Path, model: dict[str, Any] | None = None, quantizer: dict[str, Any] | None = None
) -> Path:
    """A trained codec's export (``pipeline.export``, e.g. the shipped ``pretrained/telucodec-te``) as the train
    stage's ``--init`` weights, float32 with its config (kept on re-runs: named by the export's model id and the
    changes). ``model`` and ``quantizer``: settings merged over the export's config that keep every tensor's
    shape, e.g. ``causal: true`` (the same weights, every convolution padded on the left: a causal model that
    starts from what the non-causal one learnt) or the quantizer's dropout (how often the decoder sees fewer
    levels); a change that does not fit the tensors stops with their names."""
    from codec.formats.export import load_export
    from codec.formats.weights import WeightsError, codec_fitting, save_codec_weights

    exported = load_export(export)
    codec = exported.codec
    assert codec.config is not None  # an export always carries its config
    changes = {section: value for section, value in (("model", model), ("quantizer", quantizer)) if value}
    config = merge(codec.config, changes) if changes else codec.config
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    out = work / "init" / f"{exported.model_id[:16]}-{key}.safetensors"
    if not out.is_file():
        state = {k: v.detach().float() if v.is_floating_point() else v for k, v in codec.state_dict().items()}
        try:
            codec_fitting(config, state)
        except (WeightsError, ValueError, RuntimeError) as exc:
            raise SystemExit(f"error: --init-from {export}: the recipe's settings {changes} {exc}") from None
        meta = {
            "stage": "init",
            "from_export": exported.model_id,
            "model_changes": json.dumps(model or {}),
            "quantizer_changes": json.dumps(quantizer or {}),
        }
        save_codec_weights(out, state, config, meta)
    return out


def prepare_corpus(base: dict[str, Any], work: Path) -> Path:
    """The prepare stage on the base params' corpus, once (kept on re-runs); returns the shards folder."""
    write_params(base, work / "params.yaml")
    shards = work / "shards"  # where prepare_args(..., work, ...) writes them
    run_stage(
        prepare_args(base["prepare"]["corpus"], work, work / "params.yaml"),
        done=shards / "manifest.json",
        log=work / "prepare.log",
    )
    return shards


def calibrate(
    name: str, data: dict[str, Any], shards: Path, seed: Callable[[], Path], work: Path, adversarial: bool, steps: int
) -> float:
    """Seconds per training step of the recipe (with its discriminator from step 0 when ``adversarial``),
    from a short run of the train stage in a scratch folder."""
    key = "adversarial" if adversarial else "generator"
    done = work / f"calibration-{key}.json"
    if done.is_file():
        return json.loads(done.read_text())["seconds_per_step"]
    scratch = work / f"calibration-{key}"
    short = merge(
        data,
        {
            "train": {
                "steps": steps + 1,
                "validate_every": 10_000,
                "checkpoint_every": 10_000,
                "valid_max_examples": 1,
                "valid_segment_seconds": 0.5,
            },
            "loss": {"adversarial_start_step": 0 if adversarial else 10**9},
        },
    )
    write_params(short, scratch / "params.yaml", f"recipe {name}")
    run_stage(train_args(shards, seed(), scratch, scratch / "params.yaml"), log=scratch / "train.log")
    timings = json.loads((scratch / "timings.json").read_text())
    seconds = data["train"]["batch_size"] / timings["examples_per_second"]
    write_json_atomic(done, {"seconds_per_step": seconds, "steps_timed": steps})
    return seconds


def budget_steps(minutes: float, generator_s: float, adversarial_s: float, adversarial_start: int) -> int:
    """Most steps (a multiple of 50) whose generator-only steps before ``adversarial_start`` and adversarial
    steps after it fit ``minutes``."""
    budget = minutes * 60
    if adversarial_start * generator_s >= budget:
        steps = budget / generator_s
    else:
        steps = adversarial_start + (budget - adversarial_start * generator_s) / adversarial_s
    return max(50, int(steps // 50 * 50))


def run_recipe(name: str, base: dict[str, Any], args: argparse.Namespace, shards: Path, tag: str) -> dict[str, Any]:
    work = args.work / tag / name
    work.mkdir(parents=True, exist_ok=True)
    data = recipe_params(base, args.recipe_dir, name)
    seed_params = write_params(data, work / "seed-params.yaml", f"recipe {name}")
    # --init-from: every recipe fine-tunes the same trained codec, laid out as the recipe's model section says,
    # its quantizer trained as the recipe's quantizer section says
    seed = (
        init_weights(args.init_from, args.work, data.get("model"), data.get("quantizer"))
        if args.init_from
        else seed_path(args.work, data)
    )
    model = work / "codec.safetensors"  # where train_args(..., work, ...) writes it

    def ensure_seed() -> Path:
        if args.init_from:
            return seed
        run_stage(
            seed_args(shards, seed, work / "seed-params.yaml"),
            done=seed,
            log=seed.with_suffix(".log"),
        )
        return seed

    start = seed_params.loss.adversarial_start_step
    generator_s = calibrate(name, data, shards, ensure_seed, work, adversarial=False, steps=args.calibration_steps)
    if args.budget_steps:
        steps = args.budget_steps
        adversarial = start < steps
    else:
        adversarial = start < args.budget_minutes * 60 / generator_s
    # The discriminator's cost is measured only where it takes part within the budget.
    adversarial_s = (
        calibrate(name, data, shards, ensure_seed, work, adversarial=True, steps=args.calibration_steps)
        if adversarial
        else None
    )
    if not args.budget_steps:
        steps = budget_steps(args.budget_minutes, generator_s, adversarial_s or generator_s, start)
    every = args.checkpoint_every or (max(50, steps // 4 // 50 * 50) if steps >= 200 else steps)
    keep = {"keep_last": steps // every + 1} if args.checkpoint_every else {}  # all of them: the scaling curve's
    data = merge(data, {"train": {"steps": steps, "validate_every": every, "checkpoint_every": every, **keep}})
    params = write_params(data, work / "params.yaml", f"recipe {name}")
    t0 = time.perf_counter()
    if not model.is_file():
        ensure_seed()
    run_stage(
        train_args(shards, seed, work, work / "params.yaml"),
        done=model,
        log=work / "train.log",
    )
    if not (work / "train-wall.json").is_file():
        write_json_atomic(work / "train-wall.json", {"seconds": time.perf_counter() - t0})
    evaluation = work / "eval"
    run_stage(
        evaluate_args(model, shards, evaluation, work / "params.yaml"),
        done=evaluation / "metrics.json",
        log=work / "evaluate.log",
    )
    spectra = work / "spectrum.json"
    if not spectra.is_file() or "high_band_db" not in json.loads(spectra.read_text()):  # older runs: less
        write_json_atomic(spectra, check_spectrum(model, shards, args.max_utterances))
    from codec.train.loop import run_seconds

    timings = json.loads((work / "timings.json").read_text())
    disc_share = max(0.0, 1 - generator_s / adversarial_s) if adversarial_s and start < steps else 0.0
    return {
        "recipe": name,
        "steps": params.train.steps,
        "batch_size": params.train.batch_size,
        "segment_seconds": params.train.segment_seconds,
        "adversarial_start_step": start,
        "seconds_per_step": {"generator": generator_s, "adversarial": adversarial_s},
        "discriminator_share": disc_share,
        "train_seconds": run_seconds(timings),  # over every sitting of a resumed run, where on record
        "resumed_from": timings.get("resumed_from"),
        "examples_per_second": timings["examples_per_second"],
        "data_wait_fraction": timings["data_wait_fraction"],
        "peak_gpu_memory_bytes": timings.get("peak_gpu_memory_bytes"),
        "train_wall_seconds": json.loads((work / "train-wall.json").read_text())["seconds"],
        "metrics": json.loads((evaluation / "metrics.json").read_text()),
        "spectrum": json.loads(spectra.read_text()),
        "validation": validation_curve(work / "train" / "plots" / "metrics", params.quantizer.num_levels),
    }


def check_spectrum(model: Path, shards: Path, max_utterances: int) -> dict[str, Any]:
    """Average output spectrum at every level against the input's, over the test utterances."""
    import torch

    from codec.evaluation.sets import load_test_split
    from codec.evaluation.spectrum import average_power_spectrum, excess_db, fft_size, spectrum_check
    from codec.formats.export import load_any_codec

    codec = load_any_codec(model).eval()
    test = load_test_split(shards, codec.sample_rate, max_utterances)
    inputs, outputs = [], []
    with torch.no_grad(), torch.nn.utils.parametrize.cached():
        for utt in test.utterances:
            x = torch.from_numpy(utt.audio).view(1, 1, -1)
            outputs.append(codec.decode(codec.encode(x))[0, 0, : x.shape[-1]].numpy())
            inputs.append(utt.audio)
    rates = overlap_rates(codec)
    n_fft = fft_size(codec.sample_rate, rates)  # 1024 (15.6 Hz bins) at 50 frames/s
    reference, output = average_power_spectrum(inputs, n_fft), average_power_spectrum(outputs, n_fft)
    found = spectrum_check(reference, output, codec.sample_rate, frame_rates=rates)
    # The curve itself, for the plot: output over input per bin, the overall level taken out.
    curve = excess_db(reference, output) - found.level_excess_db
    return {
        **found.as_dict(),
        "bin_hz": codec.sample_rate / 2 / (curve.size - 1),
        "excess_db": [round(float(v), 2) for v in curve],
    }


def overlap_rates(codec: Any) -> list[float]:
    """Frames per second whose hop can print a ripple: the code frames, and an iSTFT head's finer frames."""
    head = getattr(codec.decoder, "head", None)
    rates = {codec.frame_rate, codec.sample_rate / head.hop_length} if head is not None else {codec.frame_rate}
    return sorted(rates)


def validation_curve(plots: Path, levels: int) -> list[dict[str, float]]:
    from experiments.stage_runs import read_series

    series = {name: read_series(plots, f"valid/{name}") for name in ("snr_db", "si_snr_db", "mel_distance")}
    used = [read_series(plots, f"valid/vq/used_fraction/{level:02d}") for level in range(levels)]
    return [
        {
            "step": step,
            **{k: v.get(step) for k, v in series.items()},
            "min_used_fraction": min((u[step] for u in used if step in u), default=None),
        }
        for step in sorted(series["snr_db"])
    ]


# ---------------------------------------------------------------------------------------------- report


def table_rows(results: list[dict[str, Any]], corpus: str) -> list[dict[str, Any]]:
    """One row per recipe and bitrate, then the Opus rows (from the first recipe's run: same utterances)."""
    rows = []
    for r in results:
        codec = r["metrics"].get(corpus, {}).get("codec", {})
        for values in sorted(codec.values(), key=lambda v: -v["kbps"]):
            rows.append({"system": r["recipe"], "kbps": values["kbps"], **{m: values.get(m) for m, *_ in METRICS}})
    opus = results[0]["metrics"].get(corpus, {}).get("opus", {}) if results else {}
    for kbps in OPUS_KBPS:
        values = opus.get(f"{kbps}kbps")
        if values:
            rows.append({"system": "Opus", "kbps": values["kbps"], **{m: values.get(m) for m, *_ in METRICS}})
    return rows


def markdown(results: list[dict[str, Any]], tag: str, corpora: list[str]) -> str:
    fmt = lambda f, v: "–" if v is None else f.format(v)  # noqa: E731
    lines = [f"# Recipes at a budget of {tag} of training (this machine)", ""]
    for corpus in corpora:
        lines += [
            f"## `{corpus}`",
            "",
            "| system | kbps | " + " | ".join(h for _, h, _ in METRICS) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in METRICS) + " |",
        ]
        for row in table_rows(results, corpus):
            lines.append(
                f"| {row['system']} | {row['kbps']:g} | " + " | ".join(fmt(f, row[m]) for m, _, f in METRICS) + " |"
            )
        lines.append("")
    lines += [
        "## Training cost and codec health",
        "",
        "| recipe | steps | batch x s | s/step (gen / +disc) | disc share | train s | examples/s | data wait | "
        "first / last valid SNR | min level used | spectrum |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for r in results:
        curve = r["validation"]
        s = r["spectrum"]
        spectrum = (
            "ok"
            if s["ok"]
            else "; ".join(
                [f"peak {p['frequency_hz']:.0f} Hz +{p['excess_db']:.0f} dB" for p in s["peaks"][:3]]
                + ([f"DC +{s['dc_excess_db']:.0f} dB"] if s["dc_excess_db"] > BAND_LIMIT_DB else [])
                + ([f"top band +{s['nyquist_excess_db']:.0f} dB"] if s["nyquist_excess_db"] > BAND_LIMIT_DB else [])
                + (
                    [f"{s['frame_ripple_db']:.1f} dB ripple every frame rate"]
                    if s["frame_ripple_db"] > RIPPLE_LIMIT_DB
                    else []
                )
                + (
                    [f"above 1 kHz {s['high_band_db']:+.1f} dB"]
                    if abs(s.get("high_band_db", 0.0)) > HIGH_BAND_LIMIT_DB
                    else []
                )
            )
        )
        sps = r["seconds_per_step"]
        with_disc = "–" if sps["adversarial"] is None else f"{sps['adversarial']:.3f}"
        lines.append(
            f"| {r['recipe']} | {r['steps']} | {r['batch_size']} x {r['segment_seconds']:g} | "
            f"{sps['generator']:.3f} / {with_disc} | {100 * r['discriminator_share']:.0f}% | "
            f"{r['train_seconds']:.0f} | {r['examples_per_second']:.1f} | {100 * r['data_wait_fraction']:.1f}% | "
            f"{fmt('{:+.2f}', curve[0]['snr_db'] if curve else None)} / "
            f"{fmt('{:+.2f}', curve[-1]['snr_db'] if curve else None)} | "
            f"{fmt('{:.0%}', min((c['min_used_fraction'] for c in curve[1:] or curve), default=None))} | {spectrum} |"
        )
    return "\n".join(lines) + "\n"


def plot_spectra(results: list[dict[str, Any]], out: Path, tag: str) -> None:
    """Each recipe's average output spectrum over the input's (dB, overall level removed): tones and DC
    offsets stand out as spikes, a missing band as a trough."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [r for r in results if r["spectrum"].get("excess_db")]
    fig, axes = plt.subplots(
        len(curves) or 1, 1, figsize=(12, 1.8 + 1.6 * len(curves)), sharex=True, squeeze=False, constrained_layout=True
    )
    for ax, r in zip(axes[:, 0], curves):
        s = r["spectrum"]
        hz = [k * s["bin_hz"] for k in range(len(s["excess_db"]))]
        ax.plot(hz, s["excess_db"], lw=0.8)
        ax.axhline(0, color="k", lw=0.5)
        for peak in s["peaks"][:5]:
            ax.annotate(f"{peak['frequency_hz']:.0f} Hz", (peak["frequency_hz"], peak["excess_db"]), fontsize=7)
        ax.set(ylabel="dB", ylim=(-30, 30), title=f"{r['recipe']}: {'ok' if s['ok'] else 'FLAGGED'}")
    axes[-1, 0].set_xlabel("Hz")
    fig.suptitle(f"average output spectrum over the input's, test split ({tag} of training per recipe)")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def plot(results: list[dict[str, Any]], out: Path, tag: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    rows = table_rows(results, "test")
    systems = list(dict.fromkeys(r["system"] for r in rows))
    for ax, (metric, label) in zip(
        axes,
        (
            ("pesq_wb", "PESQ-WB (higher is better)"),
            ("stoi", "STOI (higher)"),
            ("mel_distance", "mel distance (lower)"),
        ),
    ):
        for system in systems:
            points = sorted((r["kbps"], r[metric]) for r in rows if r["system"] == system and r[metric] is not None)
            if points:
                style = "k--s" if system == "Opus" else "-o"
                ax.plot(*zip(*points), style, label=system)
        ax.set(title=label, xlabel="kbps")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"test split, {tag} of training per recipe")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments (gpu_check parses its base params with them too, so defaults live here once)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "chai-bisket-te")
    parser.add_argument("--format", default="ulca", help="the corpus's format (prepare.format)")
    parser.add_argument("--recipes", nargs="+", help="recipe names (default: every file in --recipe-dir)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--budget-minutes", type=float, default=30.0, help="training wall time per recipe")
    budget.add_argument("--budget-steps", type=int, help="fixed steps per recipe instead (quick checks)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/telucodec-recipes"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "recipes")
    parser.add_argument(
        "--extra-corpus",
        action="append",
        default=[],
        metavar="DIR",
        help="also score on this corpus (any folder of WAVs, or a known format)",
    )
    parser.add_argument("--extra-format", default="auto", help="format of the --extra-corpus folders")
    parser.add_argument("--max-utterances", type=int, default=0, help="test utterances scored (0 = all)")
    parser.add_argument(
        "--dnsmos-utterances",
        type=int,
        default=10,
        help="of those, scored with DNSMOS too (about 25 s a system on 2 cores; 0 = none)",
    )
    parser.add_argument(
        "--params",
        type=Path,
        nargs="+",
        default=[ROOT / "params.yaml"],
        help="base params files, merged in order (e.g. params.yaml workflow/params-tiny.yaml)",
    )
    parser.add_argument("--recipe-dir", type=Path, default=RECIPES, help="folder of recipe files")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        help="validate and checkpoint every N steps and keep every checkpoint (for experiments.scaling_curve)",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        help="start every recipe from this trained codec's export instead of seeded codebooks (fine-tune screens)",
    )
    parser.add_argument(
        "--calibration-steps",
        type=int,
        default=24,
        help="timed steps of each calibration run (the first, untimed step comes on top)",
    )
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if not args.corpus.is_dir():
        raise SystemExit(f"error: {args.corpus}: no such corpus folder")
    if (
        args.budget_minutes <= 0
        or (args.budget_steps is not None and args.budget_steps < 1)
        or not math.isfinite(args.budget_minutes)
        or args.calibration_steps < 1
    ):
        raise SystemExit("error: the budget and the calibration steps must be positive")
    names = recipe_names(args.recipe_dir, args.recipes)
    args.work = args.work.resolve()
    base = base_params(args)
    for name in names:  # every recipe file validates before anything runs
        write_params(recipe_params(base, args.recipe_dir, name), args.work / "check" / f"{name}.yaml", f"recipe {name}")
    shards = prepare_corpus(base, args.work / "corpus")
    tag = f"{args.budget_steps} steps" if args.budget_steps else f"{args.budget_minutes:g} min"
    results = []
    for name in names:
        print(f"== {name} ({tag})", flush=True)
        results.append(run_recipe(name, base, args, shards, tag.replace(" ", "")))
        r = results[-1]
        top = max(r["metrics"]["test"]["codec"].values(), key=lambda v: v["kbps"])
        print(
            f"   {r['steps']} steps in {r['train_seconds']:.0f} s ({r['examples_per_second']:.1f} examples/s); "
            f"{top['kbps']:g} kbps: PESQ {top['pesq_wb'] or math.nan:.2f}, STOI {top['stoi'] or math.nan:.3f}, "
            f"mel {top['mel_distance'] or math.nan:.3f}; spectrum {'ok' if r['spectrum']['ok'] else 'FLAGGED'}",
            flush=True,
        )
    corpora = ["test"] + [c["name"] for c in base["evaluate"]["extra_corpora"]]
    text = markdown(results, tag, corpora)
    print("\n" + text)
    out = args.out / tag.replace(" ", "")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.md", text)
    write_json_atomic(out / "results.json", {"corpus": args.corpus.name, "budget": tag, "results": results})
    plot(results, out / "rate_distortion.png", tag)
    plot_spectra(results, out / "spectra.png", tag)
    print(f"wrote {out / 'results.md'}, results.json, rate_distortion.png and spectra.png")


if __name__ == "__main__":
    main()
