"""Residual vector quantization with EMA codebooks (see core_vq.py) and k-means seeding (kmeans.py)."""

from codec.lazy import lazy_exports
from codec.quantization.config import QuantizerConfig

# The torch modules (core_vq) and scikit-learn (kmeans) load on first use, so that pipeline.params
# (every stage CLI, the Snakefile at parse time) can import QuantizerConfig without them, and users
# of the quantizer do not import scikit-learn (see codec.lazy).
_LAZY = {
    "EuclideanCodebook": "codec.quantization.core_vq",
    "QuantizerOutput": "codec.quantization.core_vq",
    "QuantizerStats": "codec.quantization.core_vq",
    "ResidualVectorQuantizer": "codec.quantization.core_vq",
    "fit_residual_codebooks": "codec.quantization.kmeans",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = ["QuantizerConfig", *_LAZY]
