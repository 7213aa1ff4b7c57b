"""The optimizers a run builds from its ``OptimizerConfig``: the fused AdamW kernel by default, the same update
as the per-tensor loop it replaced (rounded in another order)."""

from __future__ import annotations

import pytest
import torch

from codec.config.train import OptimizerConfig
from codec.train.parts import make_optimizer


def _weights_after_steps(cfg: OptimizerConfig, steps: int = 20) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 8, 7), torch.nn.ELU(), torch.nn.Conv1d(8, 1, 7))
    optimizer = make_optimizer(list(model.parameters()), cfg)
    x = torch.randn(4, 1, 200)
    for _ in range(steps):
        model(x).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_and_looped_optimizers_make_the_same_update(name):
    fused = OptimizerConfig(name=name, lr=1e-2, weight_decay=0.01)
    looped = OptimizerConfig(name=name, lr=1e-2, weight_decay=0.01, fused=False)
    start = _weights_after_steps(looped, steps=0)
    after_fused, after_looped = _weights_after_steps(fused), _weights_after_steps(looped)
    assert any(not torch.equal(a, b) for a, b in zip(after_looped, start))  # the steps moved the weights
    for a, b in zip(after_fused, after_looped):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_is_the_default_and_can_be_turned_off():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_optimizer(params, OptimizerConfig()).defaults["fused"] is True
    assert not make_optimizer(params, OptimizerConfig(fused=False)).defaults["fused"]
