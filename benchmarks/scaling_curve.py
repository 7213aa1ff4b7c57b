"""Quality against training budget: the checkpoints of recipe runs scored beside Opus, a fit and its prediction.

    python -m benchmarks.scaling_curve --runs /tmp/rb/9000steps/cpu /tmp/rb/9000steps/cpu-best \\
        [--steps 1000 3000 6000 9000] [--predict 200000] [--out docs/recipes/scaling]

Each run folder is one of ``benchmarks.recipe_budget``'s (``<work>/<budget>/<recipe>``), trained with
``--checkpoint-every`` so that every checkpoint is kept. For each asked step the checkpoint's weights (their
EMA when the run keeps one) are scored by the evaluate stage with the run's own params (test split at 1.5, 3
and 6 kbps, Opus at 6, 8 and 12 kbps on the same utterances). Per run and bitrate, PESQ-WB, STOI and mel
distance are fitted against ``log10(steps)`` by least squares; the fit's prediction at ``--predict`` steps is
printed with its 90% interval (Student's t on the residuals: few points, so wide). A checkpoint of a long run
is not a run of that budget (its learning rate has not decayed yet); the table says which is which.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from codec.formats.weights import save_codec_weights
from codec.runtime.io import atomic_path, write_json_atomic, write_text_atomic
from codec.train import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]
LEVELS = {"6 kbps": "q12", "3 kbps": "q6", "1.5 kbps": "q3"}
METRICS = [("pesq_wb", "PESQ-WB"), ("stoi", "STOI"), ("mel_distance", "mel distance")]
T90 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860}  # two-sided 90%, by dof


def checkpoint_weights(run: Path, step: int, out: Path) -> Path:
    """The weights of ``run``'s step-``step`` checkpoint (their EMA when kept) as a codec weights file."""
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(run / "checkpoints", step))
    codec = dict(state["codec"])
    if state.get("weight_ema"):
        codec.update({k: v.to(codec[k].dtype) for k, v in state["weight_ema"].items()})
    return save_codec_weights(out, codec, state["codec_config"], {"stage": "scaling_curve", "step": str(step)})


def score(run: Path, step: int, shards: Path) -> dict[str, Any]:
    """The evaluate stage's metrics of ``run`` at ``step`` (kept in ``run/scaling/step-N``)."""
    folder = run / "scaling" / f"step-{step:08d}"
    metrics = folder / "metrics.json"
    if not metrics.is_file():
        weights = checkpoint_weights(run, step, folder / "codec.safetensors")
        cmd = [
            sys.executable,
            "-m",
            "pipeline.evaluate",
            "--model",
            str(weights),
            "--shards",
            str(shards),
            "--metrics",
            str(metrics),
            "--scores",
            str(folder / "scores"),
            "--plots",
            str(folder / "rd"),
            "--out-dir",
            str(folder / "eval"),
            "--html",
            str(folder / "index.html"),
            "--timings",
            str(folder / "timings.json"),
            "--params",
            str(run / "params.yaml"),
        ]
        print("$ " + " ".join(cmd[2:4]) + f" ({run.name}, step {step})", flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    return json.loads(metrics.read_text())["test"]


def fit(steps: list[int], values: list[float], predict: float) -> dict[str, float]:
    """``value = a + b log10(steps)``; the prediction at ``predict`` with its 90% interval."""
    x, y = np.log10(np.asarray(steps, float)), np.asarray(values, float)
    b, a = np.polyfit(x, y, 1)
    dof = len(x) - 2
    out = {"intercept": float(a), "slope_per_decade": float(b), "prediction": float(a + b * math.log10(predict))}
    if dof > 0:
        residual = y - (a + b * x)
        s = math.sqrt(float(residual @ residual) / dof)
        x0 = math.log10(predict)
        half = (
            T90.get(dof, 1.645)
            * s
            * math.sqrt(1 + 1 / len(x) + (x0 - x.mean()) ** 2 / float(((x - x.mean()) ** 2).sum()))
        )
        out.update({"residual_std": s, "interval_90": [out["prediction"] - half, out["prediction"] + half]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, nargs="+", required=True, help="recipe_budget run folders")
    ap.add_argument("--steps", type=int, nargs="+", help="checkpoints to score (default: every one kept)")
    ap.add_argument("--shards", type=Path, help="default: the benchmark's, <work>/corpus/shards")
    ap.add_argument("--predict", type=float, default=200_000, help="steps to predict the quality at (gpu.yaml's)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "recipes" / "scaling")
    args = ap.parse_args()
    results: dict[str, Any] = {"predict_steps": args.predict, "runs": {}}
    opus: dict[str, Any] = {}
    for run in args.runs:
        shards = args.shards or run.parents[1] / "corpus" / "shards"
        steps = args.steps or [s for s, _ in ckpt.list_checkpoints(run / "checkpoints")]
        points = {}
        for step in steps:
            test = score(run, step, shards)
            points[step] = {label: {m: test["codec"][q].get(m) for m, _ in METRICS} for label, q in LEVELS.items()}
            opus = {k: {m: v.get(m) for m, _ in METRICS} for k, v in test["opus"].items()}
        fits = {
            label: {m: fit(list(points), [points[s][label][m] for s in points], args.predict) for m, _ in METRICS}
            for label in LEVELS
        }
        results["runs"][run.name] = {"points": points, "fits": fits}
    results["opus"] = opus
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "scaling.json", results)
    text = markdown(results)
    write_text_atomic(args.out / "scaling.md", text)
    plot(results, args.out / "scaling.png")
    print(text)


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Quality against training steps (checkpoints of each run, test split)",
        "",
        "| run | step | " + " | ".join(f"{label} PESQ / STOI / mel" for label in LEVELS) + " |",
        "| --- | ---: | " + " | ".join("---" for _ in LEVELS) + " |",
    ]
    for name, run in results["runs"].items():
        for step, point in run["points"].items():
            cells = [
                " / ".join(f"{point[label][m]:.3f}" if point[label][m] is not None else "–" for m, _ in METRICS)
                for label in LEVELS
            ]
            lines.append(f"| {name} | {step} | " + " | ".join(cells) + " |")
    for kbps, values in results["opus"].items():
        lines.append(f"| Opus {kbps} | | " + " / ".join(f"{values[m]:.3f}" for m, _ in METRICS) + " | | |")
    lines += [
        "",
        f"Fits `value = a + b log10(steps)` and their prediction at {results['predict_steps']:,.0f} steps "
        "(90% interval):",
        "",
        "| run | bitrate | metric | b per decade | prediction | 90% interval |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for name, run in results["runs"].items():
        for label in LEVELS:
            for m, title in METRICS:
                f = run["fits"][label][m]
                interval = f.get("interval_90")
                span = f"{interval[0]:.2f} .. {interval[1]:.2f}" if interval else "–"
                lines.append(
                    f"| {name} | {label} | {title} | {f['slope_per_decade']:+.3f} | {f['prediction']:.3f} | {span} |"
                )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), constrained_layout=True)
    for row, label in enumerate(("6 kbps", "3 kbps")):
        for ax, (m, title) in zip(axes[row], METRICS):
            for name, run in results["runs"].items():
                steps = [int(s) for s in run["points"]]
                values = [run["points"][s][label][m] for s in run["points"]]
                (line,) = ax.plot(steps, values, "o-", label=name)
                f = run["fits"][label][m]
                xs = np.logspace(math.log10(min(steps)), math.log10(results["predict_steps"]), 50)
                ax.plot(xs, f["intercept"] + f["slope_per_decade"] * np.log10(xs), ":", color=line.get_color())
            for kbps, values in results["opus"].items():
                ax.axhline(values[m], color="k", lw=0.7, ls="--")
                ax.annotate(
                    f"Opus {kbps}",
                    (min(int(s) for r in results["runs"].values() for s in r["points"]), values[m]),
                    fontsize=7,
                )
            ax.set(xscale="log", xlabel="training steps", title=f"{title}, codec at {label}")
    axes[0, 0].legend(fontsize=8)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
