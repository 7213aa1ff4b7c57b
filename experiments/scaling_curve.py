"""Quality against training budget: the checkpoints of recipe runs scored beside Opus, a fit and its prediction.

    python -m experiments.scaling_curve --runs /tmp/rb/9000steps/cpu /tmp/rb/9000steps/cpu-best \\
        [--steps 1000 3000 6000 9000] [--predict 200000] [--out docs/recipes/scaling]
    python -m experiments.scaling_curve --results OUT10/10min/results.json OUT30/30min/results.json ...

Two kinds of series. ``--runs``: each folder is one of ``experiments.recipe_budget``'s
(``<work>/<budget>/<recipe>``), trained with ``--checkpoint-every`` so that every checkpoint is kept; for each
asked step the checkpoint's weights (their EMA when the run keeps one) are scored by the evaluate stage with
the run's own params (test split at 1.5, 3 and 6 kbps, Opus at 6, 8 and 12 kbps on the same utterances).
``--results``: ``recipe_budget`` result files, already scored; each recipe's run at each budget is one point of
the series ``<recipe> (budgets)``: quality against training budget, each run with its whole schedule (learning
rate decayed, late loss changes made). Per series and bitrate, PESQ-WB, STOI and mel distance are fitted two
ways against ``log10(steps)`` by least squares, each with its prediction at ``--predict`` steps and a 90%
interval (Student's t on the residuals: few points, so wide):

- ``log``: ``value = a + b log10(steps)``, a straight line on the plot. It cannot bend, so far out it
  crosses what the metric can reach (STOI past 1, a negative mel distance); such a prediction is marked.
- ``gap``: a power law in the distance to the metric's bound (PESQ-WB 4.64, STOI 1, mel distance 0),
  ``log10|bound - value| = a + b log10(steps)``, as loss-versus-compute scaling laws are fitted: it bends
  toward the bound and never crosses it.

Both intervals only measure how well the points sit on the curve, not whether the curve holds 20x beyond
them. A checkpoint of a long run is not a run of that budget (its learning rate has not decayed yet).
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
from experiments.stage_runs import ROOT, evaluate_args

LEVELS = {"6 kbps": "q12", "3 kbps": "q6", "1.5 kbps": "q3"}
METRICS = [("pesq_wb", "PESQ-WB"), ("stoi", "STOI"), ("mel_distance", "mel distance")]
# What each metric can reach: the ceiling (PESQ-WB's MOS-LQO mapping, STOI) or the floor (a distance).
BOUNDS = {"pesq_wb": 4.64, "stoi": 1.0, "mel_distance": 0.0}
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
        cmd = [sys.executable, "-m", *evaluate_args(weights, shards, folder, run / "params.yaml", plots="rd")]
        print("$ " + " ".join(cmd[2:4]) + f" ({run.name}, step {step})", flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    return json.loads(metrics.read_text())["test"]


def levels_of(test: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fitted metrics of the codec at each bitrate, from the evaluate stage's ``test`` metrics."""
    return {label: {m: test["codec"][q].get(m) for m, _ in METRICS} for label, q in LEVELS.items()}


def opus_of(test: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fitted metrics of Opus at each bitrate it was scored at, from the evaluate stage's ``test`` metrics."""
    return {k: {m: v.get(m) for m, _ in METRICS} for k, v in test.get("opus", {}).items()}


def budget_points(
    files: list[Path], rename: dict[str, str] | None = None
) -> tuple[dict[str, dict[int, Any]], dict[str, Any]]:
    """Per recipe, its runs in ``recipe_budget`` result files by steps; and the Opus rows they were scored with.

    ``rename`` joins a recipe's runs under an older name to its series (``{"vocos-mel": "cpu"}``). A recipe run
    at the same steps in two files keeps the later file's scores.
    """
    rename = rename or {}
    series: dict[str, dict[int, Any]] = {}
    opus: dict[str, Any] = {}
    for path in files:
        for row in json.loads(path.read_text(encoding="utf-8"))["results"]:
            test = row["metrics"]["test"]
            recipe = rename.get(row["recipe"], row["recipe"])
            series.setdefault(f"{recipe} (budgets)", {})[int(row["steps"])] = levels_of(test)
            opus = opus_of(test) or opus
    return {name: dict(sorted(points.items())) for name, points in series.items()}, opus


def series_fits(points: dict[int, Any], predict: float) -> dict[str, Any]:
    """Both fits of every metric at every bitrate; none for a series of one point (a line needs two)."""
    if len(points) < 2:
        return {}
    steps = list(points)
    return {
        label: {m: fits_of(steps, [p[label][m] for p in points.values()], m, predict) for m, _ in METRICS}
        for label in LEVELS
    }


def fit(steps: list[int], values: list[float], predict: float) -> dict[str, Any]:
    """``value = a + b log10(steps)``; the prediction at ``predict`` with its 90% interval."""
    x, y = np.log10(np.asarray(steps, float)), np.asarray(values, float)
    b, a = np.polyfit(x, y, 1)
    dof = len(x) - 2
    out: dict[str, Any] = {"intercept": float(a), "slope_per_decade": float(b)}
    out["prediction"] = float(a + b * math.log10(predict))
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


def fit_gap(steps: list[int], values: list[float], bound: float, predict: float) -> dict[str, Any]:
    """A power law in the distance to ``bound``: ``log10|bound - value| = a + b log10(steps)``.

    The prediction and its interval are the log fit's mapped back through :func:`gap_value`, so they stay on
    the reachable side of the bound. ``values`` must all lie strictly on one side of it.
    """
    gaps = [bound - v for v in values]
    side = 1.0 if all(g > 0 for g in gaps) else -1.0
    if not all(side * g > 0 for g in gaps):
        raise ValueError(f"values {values} are not all on one side of {bound}")
    line = fit(steps, [math.log10(side * g) for g in gaps], predict)
    out: dict[str, Any] = {
        "bound": bound,
        "side": side,  # +1: the values lie under the bound (a ceiling), -1: over it (a floor)
        "log10_gap_at_1_step": float(line["intercept"]),
        "exponent": float(line["slope_per_decade"]),  # the gap scales as steps ** exponent
        "prediction": float(gap_value(bound, side, line["prediction"])),
    }
    if "interval_90" in line:
        out["interval_90"] = sorted(float(gap_value(bound, side, g)) for g in line["interval_90"])
    return out


def gap_value(bound: float, side: float, log10_gap: Any) -> Any:
    """The metric's value ``log10_gap`` (a float or an array) away from ``bound`` on ``side``."""
    return bound - side * 10**log10_gap


def fits_of(steps: list[int], values: list[float], metric: str, predict: float) -> dict[str, Any]:
    """Both fits of one metric's points; ``log``'s prediction says whether it lies past the metric's bound."""
    line, gap = fit(steps, values, predict), fit_gap(steps, values, BOUNDS[metric], predict)
    line["past_bound"] = gap["side"] * (gap["bound"] - line["prediction"]) < 0
    return {"log": line, "gap": gap}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, nargs="*", default=[], help="recipe_budget run folders (checkpoints)")
    ap.add_argument("--results", type=Path, nargs="*", default=[], help="recipe_budget results.json files (budgets)")
    ap.add_argument("--rename", nargs="*", default=[], metavar="OLD=NEW", help="a recipe's older name in --results")
    ap.add_argument("--steps", type=int, nargs="+", help="checkpoints to score (default: every one kept)")
    ap.add_argument("--shards", type=Path, help="default: the benchmark's, <work>/corpus/shards")
    ap.add_argument("--predict", type=float, default=200_000, help="steps to predict the quality at (gpu.yaml's)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "recipes" / "scaling")
    args = ap.parse_args()
    if not args.runs and not args.results:
        ap.error("give --runs, --results or both")
    missing = [str(p) for p in args.results if not p.is_file()]
    if missing:
        ap.error(f"no such results file: {', '.join(missing)}")
    if any("=" not in r for r in args.rename):
        ap.error("--rename takes OLD=NEW")
    results: dict[str, Any] = {"predict_steps": args.predict, "runs": {}}
    series, opus = budget_points(args.results, dict(r.split("=", 1) for r in args.rename))
    for name, points in series.items():
        results["runs"][name] = {"points": points, "fits": series_fits(points, args.predict)}
    for run in args.runs:
        shards = args.shards or run.parents[1] / "corpus" / "shards"
        steps = args.steps or [s for s, _ in ckpt.list_checkpoints(run / "checkpoints")]
        points = {}
        for step in steps:
            test = score(run, step, shards)
            points[step] = levels_of(test)
            opus = opus_of(test)
        results["runs"][run.name] = {"points": points, "fits": series_fits(points, args.predict)}
    results["opus"] = opus
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "scaling.json", results)
    text = markdown(results)
    write_text_atomic(args.out / "scaling.md", text)
    plot(results, args.out / "scaling.png")
    print(text)


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Quality against training steps (test split): a run's checkpoints, or one run per budget (`(budgets)`)",
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
        f"Fits against log10(steps) and their predictions at {results['predict_steps']:,.0f} steps (90% interval): "
        "`log`, value = a + b log10(steps); `gap`, |bound - value| = c steps^k (bounds: PESQ-WB 4.64, STOI 1, "
        "mel distance 0). `*`: past what the metric can reach.",
        "",
        "| run | bitrate | metric | log: b per decade | log: prediction | gap: k | gap: prediction |",
        "| --- | --- | --- | ---: | --- | ---: | --- |",
    ]

    def shown(f: dict[str, Any]) -> str:
        interval = f.get("interval_90")
        span = f" ({interval[0]:.3f} .. {interval[1]:.3f})" if interval else ""
        return f"{f['prediction']:.3f}{'*' if f.get('past_bound') else ''}{span}"

    for name, run in results["runs"].items():
        if not run["fits"]:
            lines.append(f"| {name} | | | scored at one step: no fit | | | |")
            continue
        for label in LEVELS:
            for m, title in METRICS:
                log, gap = run["fits"][label][m]["log"], run["fits"][label][m]["gap"]
                lines.append(
                    f"| {name} | {label} | {title} | {log['slope_per_decade']:+.3f} | {shown(log)} "
                    f"| {gap['exponent']:+.3f} | {shown(gap)} |"
                )
    return "\n".join(lines) + "\n"


def gap_curve(gap: dict[str, Any], xs: np.ndarray) -> np.ndarray:
    """The ``gap`` fit's values at steps ``xs``, for the plot."""
    return gap_value(gap["bound"], gap["side"], gap["log10_gap_at_1_step"] + gap["exponent"] * np.log10(xs))


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
                if not run["fits"]:
                    continue
                xs = np.logspace(math.log10(min(steps)), math.log10(results["predict_steps"]), 50)
                log, gap = run["fits"][label][m]["log"], run["fits"][label][m]["gap"]
                ax.plot(xs, log["intercept"] + log["slope_per_decade"] * np.log10(xs), ":", color=line.get_color())
                ax.plot(xs, gap_curve(gap, xs), "--", color=line.get_color(), lw=0.8)
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
