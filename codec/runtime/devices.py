"""Which torch device a setting names: the one resolution the training and the evaluation share."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """The device setting cannot be honoured here (unknown, or CUDA asked for without one)."""


def resolve_device(kind: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is present, else ``cpu``; ``cpu``; ``cuda`` -> ``cuda:<local_rank>``
    (modulo the devices there are), a :class:`DeviceError` without CUDA: a run never falls back silently."""
    if kind not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"unknown device {kind!r}; expected auto, cpu or cuda")
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError("device 'cuda' was asked for but torch sees no CUDA device")
    return torch.device("cuda", local_rank % torch.cuda.device_count())
