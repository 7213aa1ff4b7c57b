"""benchmarks/scaling_curve.py's fits: they recover the curves they assume and say when a prediction is impossible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.scaling_curve import fit, fit_gap, fits_of, gap_curve

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
