"""The codec: SEANet encoder -> residual vector quantizer -> SEANet decoder.

Parts are passed in (like audiocraft's ``EncodecModel``); :func:`build_codec` assembles
the default ones from configs, and :func:`codec_from_config` rebuilds a codec from the
plain dict kept in :attr:`Codec.config` (so a checkpoint needs no ``params.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from codec.config.convert import from_dict, to_dict
from codec.config.model import ModelConfig
from codec.config.quantizer import QuantizerConfig
from codec.model.seanet import SEANetDecoder, SEANetEncoder
from codec.model.vocos import VocosDecoder
from codec.quantization.core_vq import QuantizerStats, ResidualVectorQuantizer


@dataclass
class CodecOutput:
    """Result of :meth:`Codec.forward`.

    reconstruction: ``[B, 1, T]`` waveform, same length as the input.
    codes: ``[B, n_q, F]`` int64 codebook indices, ``F = ceil(T / hop_length)``.
    commitment_loss: scalar, already weighted by ``QuantizerConfig.commitment_weight``.
    stats: the quantizer's :class:`QuantizerStats` (perplexity, usage, bitrate, n_q, ...).
    """

    reconstruction: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    stats: QuantizerStats


class Codec(nn.Module):
    """Neural audio codec over mono waveforms in [-1, 1] at ``sample_rate`` Hz.

    ``encoder``: ``[B, 1, T] -> [B, D, T / hop]`` with attributes ``hop_length`` and ``dimension``;
    ``quantizer``: ``forward(z, n_q) -> QuantizerOutput``, ``encode(z, n_q)``, ``decode(codes)``;
    ``decoder``: ``[B, D, F] -> [B, 1, F * hop]``.
    ``config``: optional plain dict for :func:`codec_from_config` (set by :func:`build_codec`).
    """

    quantizer: ResidualVectorQuantizer

    def __init__(
        self,
        encoder: nn.Module,
        quantizer: ResidualVectorQuantizer,
        decoder: nn.Module,
        sample_rate: int,
        config: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.sample_rate = int(sample_rate)
        self.config = config

    @property
    def hop_length(self) -> int:
        """Samples per code frame."""
        # An int attribute of the encoder (see the class docstring); nn.Module types attributes as Tensor | Module.
        return int(cast(int, self.encoder.hop_length))

    @property
    def frame_rate(self) -> float:
        """Code frames per second (50.0 at 16 kHz with hop 320)."""
        return self.sample_rate / self.hop_length

    @property
    def num_levels(self) -> int:
        return int(self.quantizer.num_levels)

    def bitrate_kbps(self, n_q: int | None = None) -> float:
        """Bitrate in kbit/s when ``n_q`` levels are sent (all levels when None)."""
        return self.quantizer.bitrate_kbps(n_q)

    def _preprocess(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Clip to [-1, 1] and right-pad with zeros to a multiple of ``hop_length``."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"expected a waveform of shape [B, 1, T], got {tuple(x.shape)}")
        length = x.shape[-1]
        pad = (-length) % self.hop_length
        return F.pad(x.clamp(-1.0, 1.0), (0, pad)), length

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> CodecOutput:
        """Encode, quantize (``n_q`` levels; None = the quantizer's choice) and decode ``x [B, 1, T]``."""
        padded, length = self._preprocess(x)
        q = self.quantizer(self.encoder(padded), n_q)
        y = self.decoder(q.quantized)[..., :length]
        return CodecOutput(reconstruction=y, codes=q.codes, commitment_loss=q.commitment_loss, stats=q.stats)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Waveform ``[B, 1, T]`` -> codes ``[B, n_q, ceil(T / hop_length)]`` (int64)."""
        padded, _ = self._preprocess(x)
        return self.quantizer.encode(self.encoder(padded), n_q)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, n_q, F]`` -> waveform ``[B, 1, F * hop_length]``; crop to the known length."""
        return self.decoder(self.quantizer.decode(codes))


def build_codec(model_cfg: ModelConfig, quantizer_cfg: QuantizerConfig, sample_rate: int, *, seed: int = 0) -> Codec:
    """SEANet encoder + residual VQ + SEANet or Vocos decoder; ``Codec.config`` records everything to rebuild it.

    ``seed`` seeds the quantizer-dropout draws (not needed to rebuild a trained model).
    Weights are initialised from torch's global RNG: call ``torch.manual_seed`` first.
    """
    encoder = SEANetEncoder(model_cfg)
    decoder = VocosDecoder(model_cfg) if model_cfg.decoder == "vocos" else SEANetDecoder(model_cfg)
    quantizer = ResidualVectorQuantizer(
        model_cfg.latent_dim, quantizer_cfg, sample_rate / model_cfg.hop_length, seed=seed
    )
    config = {"model": to_dict(model_cfg), "quantizer": to_dict(quantizer_cfg), "sample_rate": int(sample_rate)}
    return Codec(encoder, quantizer, decoder, sample_rate, config=config)


def codec_from_config(config: dict[str, Any], *, seed: int = 0) -> Codec:
    """Rebuild an (untrained) codec from :attr:`Codec.config`; then ``load_state_dict`` the weights."""
    unknown = sorted(set(config) - {"model", "quantizer", "sample_rate"})
    if unknown:
        raise ValueError(f"codec config: unknown key(s) {unknown}")
    return build_codec(
        from_dict(ModelConfig, config["model"], "codec.model"),
        from_dict(QuantizerConfig, config["quantizer"], "codec.quantizer"),
        int(config["sample_rate"]),
        seed=seed,
    )
