"""The codec model: SEANet encoder/decoder around a residual vector quantizer."""

from codec.lazy import lazy_exports
from codec.model.config import ModelConfig

# The torch modules load on first use, so that pipeline.params (every stage CLI, the Snakefile at
# parse time) can import ModelConfig without importing torch (see codec.lazy).
_LAZY = {
    "Codec": "codec.model.codec",
    "CodecOutput": "codec.model.codec",
    "build_codec": "codec.model.codec",
    "codec_from_config": "codec.model.codec",
    "SEANetDecoder": "codec.model.seanet",
    "SEANetEncoder": "codec.model.seanet",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = ["ModelConfig", *_LAZY]
