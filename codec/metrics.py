"""Signal-level quality metrics of a reconstruction against its reference (pure functions)."""

from __future__ import annotations

import torch

_EPS = 1e-8


def snr(reference: torch.Tensor, estimate: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Signal-to-noise ratio in dB along the last axis, higher is better.

    ``10 log10(sum(ref^2) / sum((ref - est)^2))``; shapes ``[..., T]`` -> ``[...]`` (float32).
    ``eps`` keeps silent references and perfect estimates finite.
    """
    reference, estimate = reference.float(), estimate.float()
    signal = reference.square().sum(-1)
    noise = (reference - estimate).square().sum(-1)
    return 10.0 * torch.log10((signal + eps) / (noise + eps))


def si_snr(reference: torch.Tensor, estimate: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Scale-invariant SNR in dB along the last axis (both signals made zero-mean), higher is better.

    The estimate is projected on the reference, ``target = (<est, ref> / ||ref||^2) ref``, and
    ``10 log10(||target||^2 / ||est - target||^2)`` is returned; ``[..., T]`` -> ``[...]``.
    Unlike :func:`snr` it ignores a wrong overall gain.
    """
    reference = reference.float() - reference.float().mean(-1, keepdim=True)
    estimate = estimate.float() - estimate.float().mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.square().sum(-1, keepdim=True) + eps)
    target = scale * reference
    return 10.0 * torch.log10((target.square().sum(-1) + eps) / ((estimate - target).square().sum(-1) + eps))
