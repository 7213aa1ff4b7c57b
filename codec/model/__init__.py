"""The codec model: SEANet encoder/decoder around a residual vector quantizer."""

from codec.model.codec import Codec, CodecOutput, build_codec, codec_from_config
from codec.model.config import ModelConfig
from codec.model.seanet import SEANetDecoder, SEANetEncoder

__all__ = ["Codec", "CodecOutput", "ModelConfig", "SEANetDecoder", "SEANetEncoder", "build_codec", "codec_from_config"]
