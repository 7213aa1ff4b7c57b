"""Activations of the SEANet encoder and decoder: ELU (EnCodec) or Snake (BigVGAN, DAC).

Snake, ``x + sin^2(alpha x) / alpha`` with a learned ``alpha`` per channel, is periodic on top of
the identity: a layer can produce and follow harmonics without learning them from many ReLU-like
kinks. DAC uses it throughout its encoder and decoder; speech is mostly harmonics of a pitch.
"""

from __future__ import annotations

import torch
from torch import nn

from codec.config.model import Activation
from codec.model.layer import ELU, Pointwise


class Snake1d(Pointwise):
    """``x + sin^2(alpha x) / alpha`` over ``[B, C, T]``; parameter ``alpha [1, C, 1]``, initialised to 1.

    ``alpha`` sets the frequency of the periodic part (and ``1 / alpha`` its height): small values
    behave like ``x + alpha x^2`` near 0, large ones add a fast ripple. The ``1e-9`` keeps the
    division finite if an alpha is driven to 0.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def extra_repr(self) -> str:
        return f"channels={self.alpha.shape[1]}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha
        return x + torch.sin(alpha * x).square() * (alpha + 1e-9).reciprocal()


def activation(kind: Activation, channels: int) -> nn.Module:
    """A fresh activation module of ``kind`` for ``channels`` channels (a pointwise streaming layer)."""
    if kind == "elu":
        return ELU()
    if kind == "snake":
        return Snake1d(channels)
    raise ValueError(f"unknown activation {kind!r}; expected 'elu' or 'snake'")
