"""experiments/scaling_curve.py's fits: they recover the curves they assume and say when a prediction is impossible."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.scaling_curve import budget_points, fit, fit_gap, fits_of, gap_curve, series_fits

STEPS = [1000, 2000, 4000, 8000]


def test_the_log_fit_recovers_a_line_in_log_steps_and_its_prediction():
    values = [1.0 + 0.5 * math.log10(s) for s in STEPS]
    f = fit(STEPS, values, 100_000)
    assert f["slope_per_decade"] == pytest.approx(0.5)
    assert f["prediction"] == pytest.approx(1.0 + 0.5 * 5)
    lo, hi = f["interval_90"]
    assert lo == pytest.approx(hi)  # points exactly on the line: no spread to widen it


def test_the_log_fit_interval_widens_with_scatter_and_with_distance():
    values = [1.0 + 0.5 * math.log10(s) + d for s, d in zip(STEPS, (0.02, -0.03, 0.03, -0.02))]
    near, far = fit(STEPS, values, 10_000), fit(STEPS, values, 1_000_000)
    assert near["interval_90"][0] < near["prediction"] < near["interval_90"][1]
    assert far["interval_90"][1] - far["interval_90"][0] > near["interval_90"][1] - near["interval_90"][0]


@pytest.mark.parametrize("bound, side", [(1.0, 1.0), (0.0, -1.0)])
def test_the_gap_fit_recovers_a_power_law_to_the_bound_from_either_side(bound, side):
    values = [bound - side * 2.0 * s**-0.3 for s in STEPS]
    f = fit_gap(STEPS, values, bound, 1e6)
    assert f["exponent"] == pytest.approx(-0.3)
    assert f["prediction"] == pytest.approx(bound - side * 2.0 * 1e6**-0.3)
    assert gap_curve(f, np.array([1000.0]))[0] == pytest.approx(values[0])


def test_the_gap_fit_never_crosses_the_bound_where_the_log_fit_does():
    """STOI rising 0.1 a decade reaches 1 within two decades; the gap fit bends toward 1 instead."""
    values = [0.82, 0.85, 0.88, 0.91]
    both = fits_of(STEPS, values, "stoi", 1e6)
    assert both["log"]["prediction"] > 1 and both["log"]["past_bound"]
    assert 0.91 < both["gap"]["prediction"] < 1 and all(v < 1 for v in both["gap"]["interval_90"])


def test_values_on_both_sides_of_the_bound_are_refused():
    with pytest.raises(ValueError, match="one side"):
        fit_gap(STEPS, [0.9, 1.1, 0.95, 0.97], 1.0, 1e5)


def results_file(path: Path, rows: list[tuple[str, int, float]]) -> Path:
    """A recipe_budget results.json with one row per (recipe, steps, PESQ-WB at 6 kbps); other levels lower."""

    def level(pesq: float) -> dict:
        return {"pesq_wb": pesq, "stoi": 0.5 + pesq / 10, "mel_distance": 1 / pesq}

    results = [
        {
            "recipe": recipe,
            "steps": steps,
            "metrics": {
                "test": {
                    "codec": {"q12": level(pesq), "q6": level(pesq - 0.3), "q3": level(pesq - 0.6)},
                    "opus": {"8kbps": {"pesq_wb": 2.46, "stoi": 0.907, "mel_distance": 0.459}},
                }
            },
        }
        for recipe, steps, pesq in rows
    ]
    path.write_text(json.dumps({"budget": "x", "results": results}))
    return path


def test_budget_points_group_each_recipes_runs_by_steps_across_files(tmp_path):
    first = results_file(tmp_path / "a.json", [("cpu", 9000, 2.0), ("head", 3000, 1.6)])
    second = results_file(tmp_path / "b.json", [("vocos", 3000, 1.5), ("cpu", 9000, 2.1)])
    series, opus = budget_points([first, second], {"vocos": "cpu"})
    assert list(series) == ["cpu (budgets)", "head (budgets)"]
    assert list(series["cpu (budgets)"]) == [3000, 9000]  # sorted by steps
    assert series["cpu (budgets)"][9000]["6 kbps"]["pesq_wb"] == 2.1  # the later file's run
    assert series["cpu (budgets)"][3000]["3 kbps"]["pesq_wb"] == pytest.approx(1.2)
    assert opus == {"8kbps": {"pesq_wb": 2.46, "stoi": 0.907, "mel_distance": 0.459}}
    assert series_fits(series["head (budgets)"], 1e5) == {}  # one point: no line
    fits = series_fits(series["cpu (budgets)"], 1e5)
    assert fits["6 kbps"]["pesq_wb"]["log"]["slope_per_decade"] == pytest.approx((2.1 - 1.5) / math.log10(3))


def test_the_command_fits_and_plots_budget_runs_without_scoring_anything(tmp_path):
    results = results_file(tmp_path / "r.json", [("cpu", 1000, 1.4), ("cpu", 3000, 1.8), ("cpu", 9000, 2.2)])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "experiments.scaling_curve", "--results", str(results), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    table = (out / "scaling.md").read_text()
    assert "| cpu (budgets) | 3000 | 1.800 / 0.680 / 0.556 |" in table
    assert "| cpu (budgets) | 6 kbps | PESQ-WB | +0.838 |" in table  # 0.4 per log10(3) = 0.838 a decade
    assert (out / "scaling.png").stat().st_size > 0
    saved = json.loads((out / "scaling.json").read_text())
    assert saved["runs"]["cpu (budgets)"]["fits"]["3 kbps"]["stoi"]["gap"]["side"] == 1.0


def test_the_command_refuses_no_series_and_a_missing_file(tmp_path):
    root = Path(__file__).resolve().parents[2]
    bare = subprocess.run([sys.executable, "-m", "experiments.scaling_curve"], capture_output=True, text=True, cwd=root)
    assert bare.returncode == 2 and "--runs, --results" in bare.stderr
    cmd = [sys.executable, "-m", "experiments.scaling_curve", "--results", str(tmp_path / "none.json")]
    gone = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    assert gone.returncode == 2 and "none.json" in gone.stderr
