"""An exponential moving average of the codec's weights, for validation and the exported model.

The weights a run ends with carry the noise of its last steps; their running average is a better codec
at the same compute (Polyak averaging; DAC, BigCodec and most image and audio generators evaluate such an
average). Only parameters are averaged: the quantizer's codebooks are buffers derived from EMA statistics of
their own (``embedding_sum``, ``cluster_usage``) and are taken from the live model as they are.

The decay warms up as ``min(decay, (1 + step) / (10 + step))``: early on the average follows the weights
closely (at step 0 it is 0.1), so a short run is not dragged back to its initialisation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def ema_decay_at(step: int, decay: float) -> float:
    """The decay applied after optimizer step ``step`` (0-based): warm-up, then ``decay``."""
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightEMA:
    """Shadow copies of ``module``'s trainable parameters, ``shadow = d * shadow + (1 - d) * weight``.

    ``shadow``: ``{parameter name: float32 tensor}`` on the parameters' device, the same shapes.
    """

    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {name: p.detach().float().clone() for name, p in module.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """Fold in the weights after optimizer step ``step``."""
        weight = 1.0 - ema_decay_at(step, self.decay)
        for name, p in module.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach().float(), weight)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: t.detach().cpu().clone() for name, t in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.shadow):
            raise ValueError("EMA state does not name the same parameters as the model")
        for name, t in state.items():
            self.shadow[name].copy_(t)

    def module_state(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """``module.state_dict()`` (CPU) with every averaged parameter replaced by its average."""
        state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        for name, t in self.shadow.items():
            state[name] = t.detach().cpu().to(state[name].dtype)
        return state

    @contextlib.contextmanager
    def applied(self, module: nn.Module) -> Iterator[None]:
        """Within the block ``module`` holds the averaged weights; its own come back afterwards."""
        params = dict(module.named_parameters())
        saved = {name: params[name].detach().clone() for name in self.shadow}
        with torch.no_grad():
            for name, t in self.shadow.items():
                params[name].copy_(t)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, t in saved.items():
                    params[name].copy_(t)
