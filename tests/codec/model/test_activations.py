"""Snake: the formula on known inputs, per-channel alpha, gradients; the activation factory."""

import math

import pytest
import torch
from torch import nn

from codec.model.activations import Snake1d, activation


def test_snake_formula_on_known_inputs():
    snake = Snake1d(2)
    with torch.no_grad():
        snake.alpha.copy_(torch.tensor([1.0, 2.0]).view(1, 2, 1))
    x = torch.tensor([0.0, math.pi / 2, math.pi, -math.pi / 4]).expand(1, 2, 4)
    y = snake(x)
    # channel 0 (alpha 1): x + sin^2(x); channel 1 (alpha 2): x + sin^2(2x) / 2
    expected0 = x[0, 0] + torch.sin(x[0, 0]) ** 2
    expected1 = x[0, 1] + torch.sin(2 * x[0, 1]) ** 2 / 2
    torch.testing.assert_close(y[0, 0], expected0)
    torch.testing.assert_close(y[0, 1], expected1)
    assert y[0, 0, 1].item() == pytest.approx(math.pi / 2 + 1)
    assert y[0, 1, 1].item() == pytest.approx(math.pi / 2)  # sin(pi) = 0


def test_snake_is_periodic_on_top_of_the_identity():
    snake = Snake1d(1)
    x = torch.linspace(-10, 10, 2001).view(1, 1, -1)
    residue = snake(x) - x
    assert residue.min() >= 0 and residue.max() <= 1 + 1e-6  # sin^2 / alpha with alpha = 1
    shifted = snake(x + math.pi) - (x + math.pi)
    torch.testing.assert_close(shifted, residue, atol=1e-5, rtol=0)  # period pi / alpha


def test_snake_alpha_learns_per_channel():
    torch.manual_seed(0)
    snake = Snake1d(3)
    assert snake.alpha.shape == (1, 3, 1) and torch.equal(snake.alpha.detach(), torch.ones(1, 3, 1))
    x = torch.randn(2, 3, 50, requires_grad=True)
    snake(x).square().sum().backward()
    assert snake.alpha.grad.shape == (1, 3, 1) and (snake.alpha.grad.abs() > 0).all()
    assert x.grad.abs().sum() > 0


def test_activation_factory():
    assert isinstance(activation("elu", 4), nn.ELU)
    assert isinstance(activation("snake", 4), Snake1d) and activation("snake", 4).alpha.shape[1] == 4
    with pytest.raises(ValueError, match="unknown activation"):
        activation("relu", 4)
