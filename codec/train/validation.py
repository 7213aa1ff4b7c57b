"""Validation pass: losses and signal metrics over a fixed set of crops, code usage over the whole pass."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import NamedTuple

import torch

from codec.dsp.metrics import code_histograms, perplexity, si_snr, snr, used_fraction
from codec.losses.codec_loss import CodecLoss
from codec.model.codec import Codec


class BestMetric(NamedTuple):
    """A validation figure the best weights are chosen by, and which way is better."""

    name: str
    higher_is_better: bool

    def better(self, value: float, than: float) -> bool:
        return value > than if self.higher_is_better else value < than


# What TrainConfig.best_metric may name (its Literal lists the same keys; a test keeps them equal).
BEST_METRICS = {m.name: m for m in (BestMetric("snr_db", True), BestMetric("mel_distance", False))}


def usage_metrics(counts: torch.Tensor, prefix: str = "vq/") -> dict[str, float]:
    """Per level and mean: ``perplexity`` (exp of the code entropy, in entries) and ``used_fraction``
    (entries picked at least once) of histograms ``[n_q, K]`` accumulated over a whole pass."""
    perplexities = perplexity(counts).tolist()
    used = used_fraction(counts).tolist()
    out = {
        f"{prefix}perplexity_mean": sum(perplexities) / len(perplexities),
        f"{prefix}used_fraction_mean": sum(used) / len(used),
    }
    for level, (p, u) in enumerate(zip(perplexities, used)):
        out[f"{prefix}perplexity/{level:02d}"] = p
        out[f"{prefix}used_fraction/{level:02d}"] = u
    return out


@torch.no_grad()
def validate(
    codec: Codec,
    loss: CodecLoss,
    crops: torch.Tensor,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """Run the codec (eval mode, all levels, no codebook update) over ``crops [N, 1, T]``.

    Returns means over the crops: ``loss/<term>`` (generator reconstruction terms, no adversarial),
    ``snr_db``, ``si_snr_db``, ``mel_distance`` (the multi-scale log-mel L1), ``range_ratio``
    (output peak-to-peak over input peak-to-peak), and the quantizer's ``vq/perplexity``,
    ``vq/used_fraction`` per level over the whole pass plus ``vq/ema_usage_mean``.
    """
    was_training = codec.training
    codec.eval()
    sums: dict[str, float] = {}
    counts = None
    ema_usage = 0.0
    total = crops.shape[0]
    try:
        for start in range(0, total, batch_size):
            x = crops[start : start + batch_size].to(device, non_blocking=True)
            n = x.shape[0]
            with autocast():
                out = codec(x)
                terms = loss.generator_loss(x, out.reconstruction, out.commitment_loss)
            y = out.reconstruction.float()
            batch = {f"loss/{name}": float(value) for name, value in terms.breakdown.items()}
            batch["mel_distance"] = float(terms.breakdown["mel"])
            per_example = {
                "snr_db": snr(x[:, 0], y[:, 0]),
                "si_snr_db": si_snr(x[:, 0], y[:, 0]),
                "range_ratio": (y.amax(-1) - y.amin(-1)).flatten()
                / (x.amax(-1) - x.amin(-1)).flatten().clamp_min(1e-8),
            }
            for name, value in batch.items():
                sums[name] = sums.get(name, 0.0) + value * n
            for name, values in per_example.items():
                sums[name] = sums.get(name, 0.0) + float(values.sum())
            hist = code_histograms(out.codes, codec.quantizer.codebook_size)
            counts = hist if counts is None else counts + hist
            ema_usage = float(out.stats.ema_usage.float().mean())
    finally:
        codec.train(was_training)
    metrics = {name: value / total for name, value in sums.items()}
    assert counts is not None  # at least one batch (fixed_crops gives one or more)
    metrics.update(usage_metrics(counts.cpu()))
    metrics["vq/ema_usage_mean"] = ema_usage
    return metrics
