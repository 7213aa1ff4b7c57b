"""A run's bookkeeping (step, bad-step guard, best validation, what was logged) and the checkpoint content
that lets it continue exactly: plain tensors, dicts, lists and numbers (see :mod:`codec.train.checkpoint`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codec.config.convert import to_dict
from codec.config.loss import LossConfig
from codec.config.train import TrainConfig
from codec.train import checkpoint as ckpt
from codec.train.fingerprint import RunFingerprint
from codec.train.parts import TrainingParts
from codec.train.schedule import lr_factor


@dataclass
class RunState:
    """Where a run is: ``step`` steps done (step ``s`` consumes batch ``s``), skipped steps in all and in a row,
    the best validation (``{"metric", "value", "step"}``) and everything logged so far as (step, {name: value}).
    Checkpoints carry the log history, so a resumed run replays it into a fresh logger: DVC deletes the logs
    of a crashed stage, not its checkpoints."""

    step: int = 0
    bad_steps: int = 0
    consecutive_bad: int = 0
    best: dict[str, Any] | None = None
    log_history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    resumed_from: int | None = None  # the step of the checkpoint this session started from


def checkpoint_state(
    parts: TrainingParts,
    run: RunState,
    fingerprint: RunFingerprint,
    cfg: TrainConfig,
    loss_cfg: LossConfig,
    *,
    world_size: int,
    seed: int,
) -> dict[str, Any]:
    """Everything needed to continue exactly from ``run.step``."""
    return {
        "step": run.step,
        "fingerprint": fingerprint.digest,
        "fingerprint_parts": fingerprint.parts,
        "codec": {k: v.detach().cpu() for k, v in parts.codec.state_dict().items()},
        "codec_config": parts.codec.config,
        "discriminator": {k: v.detach().cpu() for k, v in parts.discriminator.state_dict().items()},
        "optimizer": parts.optimizer.state_dict(),
        "disc_optimizer": parts.disc_optimizer.state_dict(),
        "weight_ema": None if parts.weight_ema is None else parts.weight_ema.state_dict(),
        # The schedules are pure functions of the step; the factors are kept for the record.
        "schedule": {"step": run.step, "lr_factor": lr_factor(run.step, cfg.steps, cfg.schedule)},
        "rng": ckpt.capture_rng_state(),
        "generators": {name: g.get_state() for name, g in parts.generators.items()},
        "data": {"batches_consumed": run.step, "world_size": world_size, "batch_size": cfg.batch_size, "seed": seed},
        "guard": {"bad_steps": run.bad_steps, "consecutive_bad": run.consecutive_bad},
        "best": run.best,
        "log_history": run.log_history,
        "train_config": to_dict(cfg),
        "loss_config": to_dict(loss_cfg),
    }


def restore(parts: TrainingParts, state: dict[str, Any], source: object) -> RunState:
    """Load checkpoint ``state`` (read from ``source``, for the message) into ``parts``; returns the run's state.
    Raises :class:`codec.train.checkpoint.CheckpointError` when it does not fit the parts."""
    try:
        parts.codec.load_state_dict(state["codec"])
        parts.discriminator.load_state_dict(state["discriminator"])
        parts.optimizer.load_state_dict(state["optimizer"])
        parts.disc_optimizer.load_state_dict(state["disc_optimizer"])
        if parts.weight_ema is not None:
            parts.weight_ema.load_state_dict(state["weight_ema"])
        for name, g in parts.generators.items():
            g.set_state(state["generators"][name])
        ckpt.restore_rng_state(state["rng"])
        step = int(state["step"])
        return RunState(
            step=step,
            bad_steps=int(state["guard"]["bad_steps"]),
            consecutive_bad=int(state["guard"]["consecutive_bad"]),
            best=state["best"],
            log_history=[(int(s), dict(row)) for s, row in state["log_history"]],
            resumed_from=step,
        )
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise ckpt.CheckpointError(f"{source}: does not fit this run's model or optimizers: {exc}") from None
