"""Settings of the residual VQ with EMA codebooks (codec.quantization.core_vq): the ``quantizer:`` section of
params.yaml."""

from __future__ import annotations

import math
from dataclasses import dataclass


def code_bits(codebook_size: int) -> int:
    """Bits per raw code of a ``codebook_size``-entry codebook: ``ceil(log2 K)`` (10 for K = 1024). The one
    definition of a level's bitrate: the quantizer's nominal bitrate, the ``.tcq`` header and the live code
    stream all use it (``log2 K`` would count fractional bits no raw stream carries when K is no power of 2)."""
    return max(1, math.ceil(math.log2(codebook_size)))


def raw_kbps(levels: int, codebook_size: int, frame_rate: float) -> float:
    """kbit/s that ``levels`` levels of raw ``code_bits(codebook_size)``-bit codes take at ``frame_rate`` frames/s."""
    return levels * code_bits(codebook_size) * frame_rate / 1000.0


@dataclass(frozen=True)
class QuantizerConfig:
    """Residual VQ hyper-parameters. The vector dimension comes from the model's latent size."""

    num_levels: int = 12
    codebook_size: int = 1024
    decay: float = 0.99  # EMA decay of cluster_usage and embedding_sum
    epsilon: float = 1e-5  # Laplace smoothing of cluster_usage
    commitment_weight: float = 1.0
    # Entries used less than this fraction of the mean (uniform) usage are replaced. At 0.1 the entries
    # used 10-40% of the average survive yet go unpicked in a 12,800-frame validation pass: the last
    # levels of a real-corpus run fell under half their entries used. 0.4 is about EnCodec's absolute
    # threshold of 2 at its ~4.7 frames per entry per step.
    dead_code_threshold: float = 0.4
    dropout: bool = True  # train with a random number of levels per batch
    dropout_min_levels: int = 1
    # Share of the training steps that draw their number of levels; the others train all of them.
    # With 1.0 the last level would train on 1 step in num_levels only and lag behind the first ones.
    dropout_probability: float = 0.5
    # At most this many dead entries per level are replaced per step: the replacement frames travel in
    # a fixed-size buffer (one all-reduce per step, no host sync to count the dead entries first).
    dead_code_max_per_step: int = 256
    # Factorised lookup (DAC, after ViT-VQGAN): each level projects its residual to codebook_dim dimensions,
    # L2-normalises it and picks the entry of highest cosine similarity; a learned projection maps the entry
    # back. 0 = look up in the latent space itself (Euclidean distance).
    codebook_dim: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.num_levels >= 1, "num_levels must be >= 1"),
            (self.codebook_size >= 2, "codebook_size must be >= 2"),
            (0.0 < self.decay < 1.0, "decay must be in (0, 1)"),
            (self.epsilon > 0.0, "epsilon must be > 0"),
            (self.commitment_weight >= 0.0, "commitment_weight must be >= 0"),
            (0.0 <= self.dead_code_threshold < 1.0, "dead_code_threshold must be in [0, 1)"),
            (1 <= self.dropout_min_levels <= self.num_levels, "dropout_min_levels must be in [1, num_levels]"),
            (0.0 <= self.dropout_probability <= 1.0, "dropout_probability must be in [0, 1]"),
            (self.dead_code_max_per_step >= 1, "dead_code_max_per_step must be >= 1"),
            (self.codebook_dim >= 0, "codebook_dim must be >= 0 (0 = no factorisation)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
