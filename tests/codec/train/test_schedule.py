import math

import pytest

from codec.config.train import ScheduleConfig
from codec.train.schedule import lr_factor


def test_warmup_is_linear_and_never_zero():
    cfg = ScheduleConfig(warmup_steps=4, decay="cosine", min_lr_ratio=0.1)
    assert [lr_factor(s, 100, cfg) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_cosine_runs_from_one_to_min_ratio_through_the_midpoint():
    cfg = ScheduleConfig(warmup_steps=10, decay="cosine", min_lr_ratio=0.1)
    total = 111  # decay spans steps 10..110: 100 steps
    assert lr_factor(10, total, cfg) == pytest.approx(1.0)
    assert lr_factor(60, total, cfg) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(35, total, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(110, total, cfg) == pytest.approx(0.1)
    values = [lr_factor(s, total, cfg) for s in range(10, total)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_exponential_and_constant():
    exp = ScheduleConfig(warmup_steps=0, decay="exponential", min_lr_ratio=0.01)
    assert lr_factor(0, 101, exp) == pytest.approx(1.0)
    assert lr_factor(50, 101, exp) == pytest.approx(0.1)
    assert lr_factor(100, 101, exp) == pytest.approx(0.01)
    const = ScheduleConfig(warmup_steps=2, decay="constant")
    assert lr_factor(0, 10, const) == pytest.approx(0.5)
    assert lr_factor(9, 10, const) == 1.0


def test_bad_schedule_values_are_rejected():
    with pytest.raises(ValueError):
        ScheduleConfig(min_lr_ratio=0.0)
    with pytest.raises(ValueError):
        ScheduleConfig(warmup_steps=-1)
