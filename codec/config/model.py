"""Hyper-parameters of the SEANet encoder/decoder (the codec minus its quantizer).

The number of quantizer levels and the codebook size live in
:class:`codec.config.quantizer.QuantizerConfig`; the bitrate follows from both:
``num_levels * code_bits(codebook_size) * sample_rate / prod(strides)`` bits/s (``code_bits``: ``ceil(log2 K)``)
(12 * 10 * 50 = 6 kbps at 16 kHz with the defaults).

The defaults are sized for the default pipeline: about 1.9 M parameters (encoder + decoder), trainable in
minutes on 2 CPU cores. For a GPU run set ``channels: 32`` (or 64), ``lstm_layers: 2``
and ``n_residual_layers: 1..3``: that is EnCodec's 24 kHz configuration (~15 M parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Activation = Literal["elu", "snake"]


@dataclass(frozen=True)
class VocosConfig:
    """The Vocos decoder (``model.decoder: vocos``): ConvNeXt blocks at the code frame rate, then an
    inverse-STFT head. The defaults are Vocos's EnCodec-token decoder (dim 384, 1152, 8 layers, n_fft 4 x hop)."""

    dim: int = 384  # channels of the ConvNeXt blocks
    intermediate_dim: int = 1152  # hidden width of each block's pointwise MLP
    num_layers: int = 8
    kernel_size: int = 7  # depthwise convolution, in frames
    n_fft: int = 0  # iSTFT window; 0 = 4 x the head's hop (Vocos: 1280 for hop 320)
    # iSTFT frames per code frame: the head's hop is the codec's hop / head_upsample (1: Vocos's layout). Finer
    # frames overlap-add over a shorter hop, so a frame-to-frame phase error echoes at a shorter lag.
    head_upsample: int = 1
    # Causal models (model.causal): frames of the iSTFT head an output sample waits for beyond the code frame
    # it lies in, at the head's hop (0: none; 1: one frame, 20 ms at head_upsample 1; head_upsample frames:
    # one code frame); see codec.model.vocos.ISTFTHead.
    lookahead_frames: int = 1

    def __post_init__(self) -> None:
        if min(self.dim, self.intermediate_dim, self.num_layers) < 1:
            raise ValueError("vocos: dim, intermediate_dim and num_layers must be >= 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"vocos: kernel_size must be odd, got {self.kernel_size}")
        if self.n_fft < 0 or self.n_fft % 2:
            raise ValueError(f"vocos: n_fft must be 0 or a positive even number, got {self.n_fft}")
        if self.lookahead_frames < 0:
            raise ValueError(f"vocos: lookahead_frames must be >= 0, got {self.lookahead_frames}")
        if self.head_upsample < 1:
            raise ValueError(f"vocos: head_upsample must be >= 1, got {self.head_upsample}")


@dataclass(frozen=True)
class ModelConfig:
    channels: int = 16  # width after the first convolution; doubles at every downsampling
    latent_dim: int = 128  # D: channels of the encoder output / quantizer vectors
    strides: list[int] = field(default_factory=lambda: [2, 4, 5, 8])  # encoder order; decoder reverses
    n_residual_layers: int = 2  # residual units per resolution, dilations dilation_base**j
    dilation_base: int = 2
    residual_kernel_size: int = 3
    kernel_size: int = 7  # first convolution (encoder and decoder)
    last_kernel_size: int = 7  # last convolution (encoder and decoder)
    compress: int = 2  # residual units narrow their hidden width by this factor
    lstm_layers: int = 0  # 0 = no LSTM at the bottleneck
    causal: bool = False  # causal (left-only) padding, for streaming
    pad_mode: Literal["reflect", "constant", "replicate"] = "reflect"  # causal turns reflect into zeros
    output_activation: Literal["tanh", "linear"] = "tanh"  # before the learnable output scale
    output_scale_init: float = 1.0  # initial value of the learnable output gain
    activation: Activation = "elu"  # of encoder and SEANet decoder: elu (EnCodec) | snake (DAC, learned alpha)
    decoder: Literal["seanet", "vocos"] = "seanet"  # seanet: transposed convolutions; vocos: ConvNeXt + iSTFT
    vocos: VocosConfig = field(default_factory=VocosConfig)  # used when decoder is vocos

    def __post_init__(self) -> None:
        if self.channels < 1 or self.latent_dim < 1:
            raise ValueError("channels and latent_dim must be positive")
        if not self.strides or any(s < 1 for s in self.strides):
            raise ValueError(f"strides must be a non-empty list of positive integers, got {self.strides}")
        if self.n_residual_layers < 0 or self.lstm_layers < 0:
            raise ValueError("n_residual_layers and lstm_layers must be >= 0")
        if self.compress < 1 or self.channels // self.compress < 1:
            raise ValueError(f"compress={self.compress} leaves no hidden channels")
        for name in ("residual_kernel_size", "kernel_size", "last_kernel_size", "dilation_base"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.output_scale_init <= 0:
            raise ValueError("output_scale_init must be positive")
        if self.decoder == "vocos":
            self._check_vocos_head()

    def _check_vocos_head(self) -> None:
        up = self.vocos.head_upsample
        if self.hop_length % up:
            raise ValueError(f"vocos.head_upsample ({up}) must divide the hop ({self.hop_length})")
        hop = self.hop_length // up
        n_fft = self.vocos.n_fft or 4 * hop
        if n_fft < hop:
            raise ValueError(f"vocos.n_fft ({n_fft}) must be at least the head's hop ({hop})")
        if self.causal and (n_fft % hop or self.vocos.lookahead_frames > n_fft // hop):
            raise ValueError(
                f"a causal vocos decoder needs n_fft ({n_fft}) a multiple of the head's hop ({hop}) and "
                f"lookahead_frames ({self.vocos.lookahead_frames}) at most n_fft / hop"
            )
        if not self.causal and (n_fft - hop) % 2:
            raise ValueError(f"vocos: n_fft - the head's hop must be even, got {n_fft} and {hop}")

    @property
    def hop_length(self) -> int:
        """Samples per latent frame: the product of the strides."""
        return math.prod(self.strides)
