from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantizerConfig:
    """Residual VQ hyper-parameters. The vector dimension comes from the model's latent size."""

    num_levels: int = 12
    codebook_size: int = 1024
    decay: float = 0.99  # EMA decay of cluster_usage and embedding_sum
    epsilon: float = 1e-5  # Laplace smoothing of cluster_usage
    commitment_weight: float = 1.0
    dead_code_threshold: float = 0.1  # entries used less than this fraction of uniform usage are replaced
    dropout: bool = True  # train with a random number of levels per batch
    dropout_min_levels: int = 1
