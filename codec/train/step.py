"""One training step: generator and discriminator gradients, then both optimizers step or neither does.

A step is atomic: the generator and discriminator gradients are both computed, then either both
optimizers step, or (a non-finite loss or gradient on any rank) neither does, the quantizer's
EMA buffers are put back as they were before the step, and the step counts as bad.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from codec.config.train import TrainConfig
from codec.quantization.core_vq import QuantizerStats
from codec.train.distributed import DistInfo, any_true, average_gradients
from codec.train.parts import TrainingParts
from codec.train.schedule import lr_factor

Autocast = Callable[[], contextlib.AbstractContextManager]


class StepResult(NamedTuple):
    """What one applied training step reports (a skipped step reports None)."""

    losses: dict[str, torch.Tensor]  # the generator loss and its terms by name ("total", "mel", ...), detached
    grad_norm: float  # of the codec's gradients, before clipping
    stats: QuantizerStats  # code usage of the step's batch
    disc_loss: float | None = None  # the discriminator's, once adversarial training has started
    disc_grad_norm: float | None = None

    def log_values(self) -> dict[str, float]:
        """The step's figures as logged under ``train/``: losses, gradient norms, and the quantizer's means
        over levels (its per-level figures are logged by validation, over a whole pass)."""
        out = {f"loss/{name}": float(value) for name, value in self.losses.items()}
        out["grad_norm"] = self.grad_norm
        if self.disc_loss is not None and self.disc_grad_norm is not None:
            out["loss/discriminator"], out["disc_grad_norm"] = self.disc_loss, self.disc_grad_norm
        out.update(self.stats.summary("vq/", per_level=False))
        return out


def autocast_for(device: torch.device, bf16: bool, cpu_bf16: bool = False) -> Autocast:
    """bf16 autocast on CUDA when ``bf16``, on CPU when ``cpu_bf16``; else none (float32)."""
    if (device.type == "cuda" and bf16) or (device.type == "cpu" and cpu_bf16):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor


def grad_norm(params: list[nn.Parameter], max_norm: float, device: torch.device) -> torch.Tensor:
    """Total L2 norm of the gradients (before clipping); clips them to ``max_norm`` when it is > 0."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    norm = torch.nn.utils.get_total_norm(grads)
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


def train_step(
    parts: TrainingParts, x: torch.Tensor, step: int, cfg: TrainConfig, info: DistInfo, autocast: Autocast
) -> StepResult | None:
    """Step ``step`` (0-based) on batch ``x [B, 1, T]``; None when it was skipped (non-finite loss or gradient)."""
    factor = lr_factor(step, cfg.steps, cfg.schedule)
    set_lr(parts.optimizer, cfg.optimizer.lr, factor)
    set_lr(parts.disc_optimizer, cfg.disc_optimizer.lr, factor)
    codec, disc, loss = parts.codec, parts.discriminator, parts.loss
    adversarial = loss.adversarial_active(step)
    # The forward updates the EMA codebooks: keep them to undo a bad step.
    buffers = {name: b.clone() for name, b in codec.named_buffers() if name in parts.persistent_buffers}
    with autocast():
        out = parts.model(x)
        disc.requires_grad_(False)
        gen = loss.generator_loss(
            x,
            out.reconstruction,
            out.commitment_loss,
            step=step,
            discriminator=disc if adversarial else None,
            progress=step / cfg.steps,
        )
    disc.requires_grad_(True)
    gen.total.backward()
    watch = [gen.total.detach(), grad_norm(parts.codec_params, cfg.max_grad_norm, info.device)]
    if adversarial:
        with autocast():
            disc_loss = loss.discriminator_loss(disc, x, out.reconstruction)
        disc_loss.total.backward()
        average_gradients(parts.disc_params, info)
        watch += [disc_loss.total.detach(), grad_norm(parts.disc_params, cfg.max_grad_norm, info.device)]
    values = torch.stack([w.float() for w in watch]).tolist()
    bad = any_true(not all(math.isfinite(v) for v in values), info)
    if bad:
        codec.load_state_dict(buffers, strict=False)
    else:
        parts.optimizer.step()
        if parts.weight_ema is not None:
            parts.weight_ema.update(codec, step)
        if adversarial:
            parts.disc_optimizer.step()
    parts.optimizer.zero_grad(set_to_none=True)
    parts.disc_optimizer.zero_grad(set_to_none=True)
    if bad:
        return None
    return StepResult(
        losses=dict(gen.breakdown),
        grad_norm=values[1],
        stats=out.stats,
        disc_loss=values[2] if adversarial else None,
        disc_grad_norm=values[3] if adversarial else None,
    )
