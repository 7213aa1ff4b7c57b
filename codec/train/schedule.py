"""Learning-rate schedules as pure functions of the step (so resuming needs only the step)."""

from __future__ import annotations

import math

from codec.config.train import ScheduleConfig


def lr_factor(step: int, total_steps: int, cfg: ScheduleConfig) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of a ``total_steps`` run.

    Warmup: ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps (never 0).
    Then from 1 to ``min_lr_ratio`` at the last step: half a cosine, a geometric (exponential)
    decay, or flat (``constant``).
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.decay == "constant":
        return 1.0
    span = max(1, total_steps - 1 - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.decay == "cosine":
        return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg.decay == "exponential":
        return cfg.min_lr_ratio**progress
    raise ValueError(f"unknown decay {cfg.decay!r}")
