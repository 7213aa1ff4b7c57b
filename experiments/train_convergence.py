"""Does the codec converge on a real corpus? The training report of the README.

    python -m experiments.train_convergence --corpus ../shared/corpora/chai-bisket-te --format ulca \
        --work /tmp/telucodec-convergence --report docs/training [--set train.steps=3000 ...]

Runs the pipeline's own stage commands (``prepare``, ``seed_codebooks``, ``train``) on the corpus with
params.yaml plus the ``--set`` overrides (written to ``<work>/params.yaml`` and checked like any params
file), reads the train stage's dvclive logs and prints, for every validation, SNR, SI-SNR, mel distance and
the lowest per-level used fraction. It then checks what training must show: validation SNR positive at the
first validation and higher at the last, and no quantizer level under 50% of its entries used in any
validation after the learning-rate warm-up. Exits 1 when a check fails.

With ``--report`` it writes ``curves.png`` (losses, SNR, code usage against steps) and ``convergence.json``
there. Re-running resumes: finished stage outputs in ``--work`` are kept and train resumes from its checkpoints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from codec.runtime.io import atomic_path, write_json_atomic
from experiments.stage_runs import (
    ROOT,
    load_yaml,
    prepare_args,
    read_series,
    run_stage,
    seed_args,
    set_dotted,
    train_args,
    write_params,
)

USED_FLOOR = 0.5  # lowest acceptable fraction of a level's entries used over a validation pass


def validations(plots: Path, levels: int) -> list[dict[str, float]]:
    """Per validation step: SNR, SI-SNR, mel distance, total loss and per-level used fractions."""
    snr = read_series(plots, "valid/snr_db")
    series = {
        "si_snr_db": read_series(plots, "valid/si_snr_db"),
        "mel_distance": read_series(plots, "valid/mel_distance"),
        "loss_total": read_series(plots, "valid/loss/total"),
    }
    used = [read_series(plots, f"valid/vq/used_fraction/{level:02d}") for level in range(levels)]
    rows = []
    for step in sorted(snr):
        row = {"step": step, "snr_db": snr[step], **{k: v[step] for k, v in series.items() if step in v}}
        row["used_fraction"] = [u[step] for u in used if step in u]
        rows.append(row)
    return rows


def check(rows: list[dict], warmup_steps: int) -> dict[str, bool]:
    after_warmup = [r for r in rows if r["step"] > warmup_steps]
    return {
        "snr_positive_at_first_validation": bool(rows) and rows[0]["snr_db"] > 0,
        "snr_rises": len(rows) > 1 and rows[-1]["snr_db"] > rows[0]["snr_db"],
        f"every_level_used_at_least_{USED_FLOOR:.0%}_after_warmup": bool(after_warmup)
        and all(min(r["used_fraction"]) >= USED_FLOOR for r in after_warmup),
    }


def plot_curves(plots: Path, rows: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    train_loss = read_series(plots, "train/loss/total")
    steps = [r["step"] for r in rows]
    ax = axes[0, 0]
    ax.plot(list(train_loss), list(train_loss.values()), lw=0.8, alpha=0.7, label="train (every log step)")
    ax.plot(steps, [r["loss_total"] for r in rows], "o-", label="valid")
    ax.set(title="total generator loss", xlabel="step")
    ax.legend()
    ax = axes[0, 1]
    ax.plot(steps, [r["snr_db"] for r in rows], "o-", label="SNR")
    ax.plot(steps, [r["si_snr_db"] for r in rows], "s-", label="SI-SNR")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(title="validation SNR (dB)", xlabel="step")
    ax.legend()
    ax = axes[1, 0]
    for term in ("mel", "log_magnitude", "spectral_convergence", "waveform_cosine"):
        values = read_series(plots, f"train/loss/{term}")
        if values:
            ax.plot(list(values), list(values.values()), lw=0.8, label=term)
    ax.set(title="train loss terms (unweighted)", xlabel="step", yscale="log")
    ax.legend()
    ax = axes[1, 1]
    used = list(zip(*[r["used_fraction"] for r in rows]))
    for level, fractions in enumerate(used):
        ax.plot(steps, fractions, lw=0.8, label=f"level {level}" if level in (0, len(used) - 1) else None)
    ax.axhline(USED_FLOOR, color="red", lw=0.8, ls="--", label=f"{USED_FLOOR:.0%}")
    ax.set(title="codebook entries used per level (validation pass)", xlabel="step", ylim=(0, 1.02))
    ax.legend()
    fig.suptitle(title)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="corpus folder")
    parser.add_argument("--format", default="auto", help="corpus format (prepare.format)")
    parser.add_argument("--work", type=Path, required=True, help="folder for shards, weights, checkpoints, logs")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params override")
    parser.add_argument("--report", type=Path, help="folder for curves.png and convergence.json")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    overrides = [f"prepare.corpus={args.corpus.resolve()}", f"prepare.format={args.format}", *args.set]
    params_path = work / "params.yaml"
    params = write_params(set_dotted(load_yaml(args.params), overrides), params_path, "--set")
    shards, seed, live = work / "shards", work / "seed.safetensors", work / "train"
    # The stages write into <work>: shards/ (prepare), seed.safetensors and seed.json, then checkpoints/,
    # codec.safetensors, train/ (dvclive) and timings.json.
    run_stage(prepare_args(params.prepare.corpus, work, params_path), done=shards / "manifest.json")
    run_stage(seed_args(shards, seed, params_path), done=seed)
    run_stage(train_args(shards, seed, work, params_path))

    plots = live / "plots" / "metrics"
    rows = validations(plots, params.quantizer.num_levels)
    print(f"\n{'step':>6} {'SNR dB':>7} {'SI-SNR':>7} {'mel':>6} {'min used':>8} {'mean used':>9}")
    for r in rows:
        used = r["used_fraction"]
        print(
            f"{r['step']:6d} {r['snr_db']:+7.2f} {r['si_snr_db']:+7.2f} {r['mel_distance']:6.3f} "
            f"{min(used):8.2f} {sum(used) / len(used):9.2f}"
        )
    checks = check(rows, params.train.schedule.warmup_steps)
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    timings = json.loads((work / "timings.json").read_text())
    print(
        f"train: {timings['examples_per_second']:.1f} examples/s, data wait "
        f"{100 * timings['data_wait_fraction']:.1f}% of step time, {timings['seconds']:.0f} s"
    )
    if args.report:
        title = (
            f"{args.corpus.name}: {params.train.steps} steps, batch {params.train.batch_size} x "
            f"{params.train.segment_seconds} s, {params.model.channels}-channel SEANet, "
            f"{params.quantizer.num_levels} x {params.quantizer.codebook_size} RVQ"
        )
        plot_curves(plots, rows, args.report / "curves.png", title)
        write_json_atomic(
            args.report / "convergence.json",
            {
                "corpus": args.corpus.name,
                "overrides": args.set,
                "validations": rows,
                "checks": checks,
                "timings": timings,
            },
        )
        print(f"wrote {args.report / 'curves.png'} and {args.report / 'convergence.json'}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
