"""Which precision a training step runs in: bf16 autocast on CUDA by default, on CPU only when asked."""

from __future__ import annotations

import torch

from codec.train.step import autocast_for


def test_cpu_steps_run_float32_unless_cpu_bf16_is_asked():
    cpu = torch.device("cpu")
    with autocast_for(cpu, bf16=True)():  # the CUDA setting alone does not reach the CPU
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with autocast_for(cpu, bf16=False, cpu_bf16=True)():
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
