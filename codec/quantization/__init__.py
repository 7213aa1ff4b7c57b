"""Residual vector quantization with EMA codebooks (see core_vq.py) and k-means seeding (kmeans.py)."""
from codec.quantization.config import QuantizerConfig
from codec.quantization.core_vq import (
    EuclideanCodebook,
    QuantizerOutput,
    QuantizerStats,
    ResidualVectorQuantizer,
)

__all__ = [
    "EuclideanCodebook",
    "QuantizerConfig",
    "QuantizerOutput",
    "QuantizerStats",
    "ResidualVectorQuantizer",
    "fit_residual_codebooks",
]


def __getattr__(name: str):
    # scikit-learn is imported only by who seeds codebooks, not by every user of the quantizer.
    if name == "fit_residual_codebooks":
        from codec.quantization.kmeans import fit_residual_codebooks

        return fit_residual_codebooks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
