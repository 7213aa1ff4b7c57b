"""SEANet convolutional encoder and decoder (the EnCodec / SoundStream family).

Shapes: the encoder maps a waveform ``[B, 1, T]`` to latents ``[B, D, ceil(T / hop)]``;
the decoder maps ``[B, D, F]`` back to ``[B, 1, F * hop]``. ``hop = prod(strides)``.
Every convolution is weight-normalised; strided convolutions use kernel ``2 * stride``.
Padding is either causal (all on the left, for streaming) or split around the centre.
Every layer implements :class:`codec.model.layer.StreamingLayer`: its reach, and its step with its own state when
causal (the last ``kernel - stride`` inputs of a convolution, the overlapping outputs of a transposed one, an LSTM's
hidden and cell states).
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from codec.config.model import ModelConfig
from codec.model.activations import Activation, activation
from codec.model.layer import NotCausal, Reach, Sequential, State, StreamingLayer, Wrapper, kept_inputs_step


def pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad the last axis; reflect padding also works when the signal is shorter than the pad."""
    if mode == "reflect":
        length = x.shape[-1]
        max_pad = max(left, right)
        if length <= max_pad:
            # Reflection needs more samples than the pad: zero-extend first, trim after.
            extra = max_pad - length + 1
            x = F.pad(x, (0, extra))
            return F.pad(x, (left, right), mode="reflect")[..., : x.shape[-1] - extra + left + right]
    return F.pad(x, (left, right), mode=mode)


def _init_conv(conv: nn.Conv1d | nn.ConvTranspose1d, fan_in: float) -> nn.Module:
    """Variance-preserving init (weights ~ N(0, 1 / fan_in), zero bias) before weight norm.

    PyTorch's default conv init shrinks the variance about threefold per layer, so after the ~20
    layers of the encoder the latents are the biases' constant plus a residue of the input
    (frame-to-frame std 0.003 against a mean of 0.05 at the defaults): the quantizer and the
    decoder then see almost no signal and gradients to the encoder vanish.
    """
    nn.init.normal_(conv.weight, 0.0, fan_in**-0.5)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class SConv1d(StreamingLayer):
    """Weight-normalised Conv1d that pads itself so that ``T_out = ceil(T_in / stride)``.

    Streaming (causal, zero padding): the state is the last ``kernel - stride`` inputs ``[1, in_ch, keep]``; a chunk's
    length must be a multiple of the stride.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        causal: bool = False,
        pad_mode: str = "reflect",
    ):
        super().__init__()
        conv = nn.Conv1d(in_ch, out_ch, kernel_size, stride=stride, dilation=dilation)
        self.conv = weight_norm(_init_conv(conv, in_ch * kernel_size))
        self.causal = causal
        # Reflection on the left would copy future samples into the past: causal uses zeros.
        self.pad_mode = "constant" if causal and pad_mode == "reflect" else pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        kernel = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
        stride = conv.stride[0]
        padding_total = kernel - stride
        length = x.shape[-1]
        # Extra right padding so the last (partial) window still yields a frame.
        n_frames = math.ceil((length - kernel + padding_total) / stride) + 1
        extra = max(0, (n_frames - 1) * stride + kernel - padding_total - length)
        if self.causal:
            left, right = padding_total, extra
        else:
            right = padding_total // 2
            left = padding_total - right
            right += extra
        return conv(pad1d(x, left, right, self.pad_mode))

    def _keep(self) -> int:
        conv = self.conv
        return (conv.kernel_size[0] - 1) * conv.dilation[0] + 1 - conv.stride[0]

    def reach(self) -> Reach | None:
        conv = self.conv
        return Reach(Fraction((conv.kernel_size[0] - 1) * conv.dilation[0]), Fraction(conv.stride[0]))

    def init_state(self) -> State:
        if not self.causal or self.pad_mode != "constant":
            raise NotCausal("a convolution is not causal with zero padding: the model cannot stream")
        keep = self._keep()
        return [self.conv.weight.new_zeros(1, self.conv.in_channels, keep)] if keep else []

    def state_size(self) -> int:
        return 1 if self._keep() else 0

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        stride = self.conv.stride[0]
        if x.shape[-1] % stride:
            raise ValueError(f"a chunk of {x.shape[-1]} frames is no multiple of the stride {stride}")
        # The kept inputs are exactly the causal left padding the offline pass gives this chunk's first window.
        return kept_inputs_step(self.conv, x, state, self._keep())


class SConvTranspose1d(StreamingLayer):
    """Weight-normalised ConvTranspose1d trimmed so that ``T_out = T_in * stride``.

    Streaming (causal): the state is the ``kernel - stride`` outputs ``[1, out_ch, keep]`` that overlap the next
    chunk's, held without the bias (which every output sample gets once) and added to them.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, causal: bool = False):
        super().__init__()
        convtr = nn.ConvTranspose1d(in_ch, out_ch, kernel_size, stride=stride)
        # Each output sample sums in_ch * kernel_size / stride input terms.
        self.convtr = weight_norm(_init_conv(convtr, in_ch * kernel_size / stride))
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convtr(x)
        padding_total = self.convtr.kernel_size[0] - self.convtr.stride[0]
        # Causal: trim only the future (right); otherwise split like the encoder padding.
        right = padding_total if self.causal else padding_total // 2
        left = padding_total - right
        return y[..., left : y.shape[-1] - right]

    def reach(self) -> Reach | None:
        convtr = self.convtr
        stride = convtr.stride[0]
        # An output sample sums at most ceil((k - 1) / s) + 1 neighbouring inputs; the trimming
        # shifts the window by under one input step, hence the + 1.
        return Reach(Fraction(math.ceil((convtr.kernel_size[0] - 1) / stride) + 1), Fraction(1, stride))

    def _keep(self) -> int:
        return self.convtr.kernel_size[0] - self.convtr.stride[0]

    def init_state(self) -> State:
        if not self.causal:
            raise NotCausal("a transposed convolution is not causal: the model cannot stream")
        keep = self._keep()
        return [self.convtr.weight.new_zeros(1, self.convtr.out_channels, keep)] if keep else []

    def state_size(self) -> int:
        return 1 if self._keep() else 0

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        convtr, keep = self.convtr, self._keep()
        z = F.conv_transpose1d(x, convtr.weight, None, stride=convtr.stride[0])  # [1, C, T * stride + keep]
        if keep:
            z = torch.cat([z[..., :keep] + state[0], z[..., keep:]], dim=-1)
            ready, state = z[..., :-keep], [z[..., -keep:]]
        else:
            ready, state = z, []
        return (ready if convtr.bias is None else ready + convtr.bias[:, None]), state


class ResidualUnit(Wrapper):
    """act -> dilated conv (dim -> dim/compress) -> act -> 1x1 conv (-> dim), plus identity skip."""

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        dilation: int,
        compress: int,
        causal: bool,
        pad_mode: str,
        act: Activation = "elu",
    ):
        super().__init__()
        hidden = max(1, dim // compress)
        self.block = Sequential(
            activation(act, dim),
            SConv1d(dim, hidden, kernel_size, dilation=dilation, causal=causal, pad_mode=pad_mode),
            activation(act, hidden),
            SConv1d(hidden, dim, 1, causal=causal, pad_mode=pad_mode),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)

    def inner(self) -> StreamingLayer:
        return self.block

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        y, state = self.block.step(x, state)
        return x + y, state


class SLSTM(StreamingLayer):
    """LSTM over time with a skip connection; ``[B, C, T] -> [B, C, T]``.

    Its reach is unbounded (the default None); streaming, the state is the hidden and cell states, each
    ``[num_layers, 1, C]``.
    """

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.permute(2, 0, 1)
        out, _ = self.lstm(seq)
        return (out + seq).permute(1, 2, 0)

    def init_state(self) -> State:
        lstm = self.lstm
        shape = (lstm.num_layers, 1, lstm.hidden_size)
        weight = next(lstm.parameters())
        return [weight.new_zeros(shape), weight.new_zeros(shape)]

    def state_size(self) -> int:
        return 2

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        seq = x.permute(2, 0, 1)
        out, (h, c) = self.lstm(seq, (state[0], state[1]))
        return (out + seq).permute(1, 2, 0), [h, c]


def _residual_stack(dim: int, cfg: ModelConfig) -> list[nn.Module]:
    return [
        ResidualUnit(
            dim, cfg.residual_kernel_size, cfg.dilation_base**j, cfg.compress, cfg.causal, cfg.pad_mode, cfg.activation
        )
        for j in range(cfg.n_residual_layers)
    ]


class SEANetEncoder(Wrapper):
    """Waveform ``[B, 1, T]`` in [-1, 1] -> latents ``[B, latent_dim, ceil(T / hop_length)]``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dimension = cfg.latent_dim
        self.hop_length = cfg.hop_length
        ch = cfg.channels
        layers: list[nn.Module] = [SConv1d(1, ch, cfg.kernel_size, causal=cfg.causal, pad_mode=cfg.pad_mode)]
        for stride in cfg.strides:
            layers += _residual_stack(ch, cfg)
            layers += [
                activation(cfg.activation, ch),
                SConv1d(ch, ch * 2, 2 * stride, stride=stride, causal=cfg.causal, pad_mode=cfg.pad_mode),
            ]
            ch *= 2
        if cfg.lstm_layers:
            layers.append(SLSTM(ch, cfg.lstm_layers))
        layers += [
            activation(cfg.activation, ch),
            SConv1d(ch, cfg.latent_dim, cfg.last_kernel_size, causal=cfg.causal, pad_mode=cfg.pad_mode),
        ]
        self.model = Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def inner(self) -> StreamingLayer:
        """Its step: audio ``[1, 1, C * hop]`` -> latents ``[1, latent_dim, C]``."""
        return self.model


class SEANetDecoder(Wrapper):
    """Latents ``[B, latent_dim, F]`` -> waveform ``[B, 1, F * hop_length]``.

    The last layer is ``output_scale * tanh(z)`` (or ``output_scale * z``) with a learnable
    scalar ``output_scale``, so the amplitude can be matched without saturating the tanh.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dimension = cfg.latent_dim
        self.hop_length = cfg.hop_length
        ch = cfg.channels * 2 ** len(cfg.strides)
        layers: list[nn.Module] = [
            SConv1d(cfg.latent_dim, ch, cfg.kernel_size, causal=cfg.causal, pad_mode=cfg.pad_mode)
        ]
        if cfg.lstm_layers:
            layers.append(SLSTM(ch, cfg.lstm_layers))
        for stride in reversed(cfg.strides):
            layers += [
                activation(cfg.activation, ch),
                SConvTranspose1d(ch, ch // 2, 2 * stride, stride, causal=cfg.causal),
            ]
            ch //= 2
            layers += _residual_stack(ch, cfg)
        layers += [
            activation(cfg.activation, ch),
            SConv1d(ch, 1, cfg.last_kernel_size, causal=cfg.causal, pad_mode=cfg.pad_mode),
        ]
        self.model = Sequential(*layers)
        self.output_activation = cfg.output_activation
        self.output_scale = nn.Parameter(torch.tensor(float(cfg.output_scale_init)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self._output(self.model(z))

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        if self.output_activation == "tanh":
            y = torch.tanh(y)
        return self.output_scale * y

    # The output activation and scale are pointwise: the reach and the state are the layers'.
    def inner(self) -> StreamingLayer:
        return self.model

    def step(self, z: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Latents ``[1, latent_dim, C]`` -> audio ``[1, 1, C * hop]``, every frame's samples at once."""
        y, state = self.model.step(z, state)
        return self._output(y), state
