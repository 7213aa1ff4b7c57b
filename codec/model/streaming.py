"""Streaming encode and decode of a causal codec: audio in, codes out (and back), chunk by chunk.

A causal model (``model.causal``) pads every convolution on the left only, so an output depends on the inputs
before it alone. :class:`StreamingEncoder` and :class:`StreamingDecoder` run the codec's own layers on each
chunk and carry between calls what the next chunk needs: the last ``kernel - stride`` inputs of every
convolution, the ``kernel - stride`` overlapping outputs of every transposed convolution, an LSTM's hidden and
cell states, and the Vocos head's overlap-add buffer. The chunks they are fed give exactly the windows the
offline pass computes, so the codes equal ``Codec.encode`` of the whole signal and the audio equals
``Codec.decode`` of all the codes, up to float rounding where a sum is split across calls (a transposed
convolution's overlap; ``tests/codec/model/test_streaming.py`` bounds it at 1e-5 of full scale, measured under
7e-7; the codes are identical).

Latency (:func:`algorithmic_latency`): a code frame needs its whole hop of audio (one frame, 20 ms at
50 frames/s); the SEANet decoder gives its frame's samples at once, the causal Vocos head after its
``lookahead_frames`` more frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from codec.model.codec import Codec
from codec.model.seanet import SLSTM, ResidualUnit, SConv1d, SConvTranspose1d, SEANetDecoder
from codec.model.vocos import ConvNeXtBlock, VocosDecoder, steady_envelope

Layer = Callable[[Tensor], Tensor]


class NotCausal(ValueError):
    """The model cannot stream: it was not trained causal."""


def is_causal(codec: Codec) -> bool:
    return bool((codec.config or {}).get("model", {}).get("causal", False))


class Latency(NamedTuple):
    """Algorithmic latency in milliseconds: the frame the encoder waits for, and the decoder's look-ahead."""

    frame_ms: float
    lookahead_ms: float

    @property
    def total_ms(self) -> float:
        return self.frame_ms + self.lookahead_ms


def algorithmic_latency(codec: Codec) -> Latency:
    """From the architecture: one hop of audio per code frame, plus the causal Vocos head's look-ahead frames
    (at the head's hop: a quarter of a code frame each with ``head_upsample`` 4)."""
    frame_ms = 1000 * codec.hop_length / codec.sample_rate
    head = getattr(codec.decoder, "head", None)
    lookahead = getattr(head, "lookahead", None) or 0
    return Latency(frame_ms, 1000 * lookahead * getattr(head, "hop_length", 0) / codec.sample_rate)


class _Conv:
    """A causal :class:`SConv1d`: the last ``kernel - stride`` inputs are kept for the next chunk. The
    weight-normalised weight is computed once (the streaming model does not train), not at every chunk."""

    def __init__(self, layer: SConv1d):
        conv = layer.conv
        if not layer.causal or layer.pad_mode != "constant":
            raise NotCausal("a convolution is not causal with zero padding: the model cannot stream")
        self.weight, self.bias = conv.weight.detach(), None if conv.bias is None else conv.bias.detach()
        self.stride, self.dilation = int(conv.stride[0]), int(conv.dilation[0])
        self.keep = (int(conv.kernel_size[0]) - 1) * self.dilation + 1 - self.stride
        self.state: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.stride:
            raise ValueError(f"a chunk of {x.shape[-1]} frames is no multiple of the stride {self.stride}")
        state = x.new_zeros(*x.shape[:-1], self.keep) if self.state is None else self.state
        buffer = torch.cat([state, x], dim=-1)
        self.state = buffer[..., x.shape[-1] :]
        return F.conv1d(buffer, self.weight, self.bias, stride=self.stride, dilation=self.dilation)


class _ConvTranspose:
    """A causal :class:`SConvTranspose1d`: the ``kernel - stride`` outputs that overlap the next chunk's are
    held back (without the bias, which every output sample gets once) and added to them."""

    def __init__(self, layer: SConvTranspose1d):
        if not layer.causal:
            raise NotCausal("a transposed convolution is not causal: the model cannot stream")
        convtr = layer.convtr
        self.weight, self.bias = convtr.weight.detach(), None if convtr.bias is None else convtr.bias.detach()
        self.stride = int(convtr.stride[0])
        self.tail: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        z = F.conv_transpose1d(x, self.weight, None, stride=self.stride)
        if self.tail is not None:
            z = torch.cat([z[..., : self.tail.shape[-1]] + self.tail, z[..., self.tail.shape[-1] :]], dim=-1)
        ready = x.shape[-1] * self.stride
        self.tail = z[..., ready:]
        return z[..., :ready] if self.bias is None else z[..., :ready] + self.bias[:, None]


class _Residual:
    def __init__(self, unit: ResidualUnit):
        self.block = stream_layer(unit.block)

    def __call__(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class _LSTM:
    def __init__(self, layer: SLSTM):
        self.lstm = layer.lstm
        self.state: tuple[Tensor, Tensor] | None = None

    def __call__(self, x: Tensor) -> Tensor:
        seq = x.permute(2, 0, 1)
        out, self.state = self.lstm(seq, self.state)
        return (out + seq).permute(1, 2, 0)


class _DepthwiseCausal:
    """A left-padded conv over frames (the Vocos embedding and depthwise convolutions), ``kernel - 1`` kept."""

    def __init__(self, conv: nn.Conv1d):
        self.conv, self.keep = conv, int(conv.kernel_size[0]) - 1
        self.state: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        state = x.new_zeros(*x.shape[:-1], self.keep) if self.state is None else self.state
        buffer = torch.cat([state, x], dim=-1)
        self.state = buffer[..., x.shape[-1] :]
        return self.conv(buffer)


class _Chain:
    def __init__(self, layers: list[Layer]):
        self.layers = layers

    def __call__(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def stream_layer(module: nn.Module) -> Layer:
    """The streaming form of one of the SEANet layers (stateless ones are used as they are)."""
    if isinstance(module, nn.Sequential):
        return _Chain([stream_layer(m) for m in module])
    if isinstance(module, SConv1d):
        return _Conv(module)
    if isinstance(module, SConvTranspose1d):
        return _ConvTranspose(module)
    if isinstance(module, ResidualUnit):
        return _Residual(module)
    if isinstance(module, SLSTM):
        return _LSTM(module)
    if isinstance(module, nn.ELU) or type(module).__name__ == "Snake1d":  # pointwise: no state
        return cast(Layer, module)
    raise NotCausal(f"no streaming form for {type(module).__name__}")


class StreamingEncoder:
    """Mono audio at the codec's rate, any number of samples at a time -> the code frames it completes.

    ``encode(samples)`` returns ``[n_q, F]`` int64 codes for every hop of audio received so far and not yet
    encoded (``F`` may be 0); ``flush()`` pads what is left to a whole hop with zeros, as ``Codec.encode`` pads a
    whole signal, and returns its frame. Samples are clipped to [-1, 1] like the offline pass.
    """

    def __init__(self, codec: Codec, n_q: int | None = None):
        if not is_causal(codec):
            raise NotCausal("the model is not causal (model.causal: false): streaming needs a causal model")
        self.codec, self.n_q = codec, n_q or codec.num_levels
        self.layers = stream_layer(cast(nn.Module, codec.encoder.model))
        self.pending = torch.zeros(0)
        self.num_samples = 0

    @torch.inference_mode()
    def encode(self, samples: Tensor) -> Tensor:
        samples = torch.as_tensor(samples, dtype=torch.float32).reshape(-1)
        self.num_samples += samples.shape[0]
        self.pending = torch.cat([self.pending, samples.clamp(-1.0, 1.0)])
        ready = self.pending.shape[0] // self.codec.hop_length * self.codec.hop_length
        chunk, self.pending = self.pending[:ready], self.pending[ready:]
        return self._codes(chunk)

    @torch.inference_mode()
    def flush(self) -> Tensor:
        chunk = F.pad(self.pending, (0, (-self.pending.shape[0]) % self.codec.hop_length))
        self.pending = torch.zeros(0)
        return self._codes(chunk)

    def _codes(self, chunk: Tensor) -> Tensor:
        if chunk.shape[0] == 0:
            return torch.zeros(self.n_q, 0, dtype=torch.int64)
        latents = self.layers(chunk.view(1, 1, -1))
        return self.codec.quantizer.encode(latents, self.n_q)[0]


class StreamingDecoder:
    """Code frames ``[n_q, F]``, any number at a time -> the audio samples they complete (float32 ``[T]``).

    A causal SEANet decoder completes each frame's hop at once; a causal Vocos decoder completes a frame's hop
    ``lookahead_frames`` frames later, and ``flush()`` gives the last ones (faded out, as offline).
    """

    def __init__(self, codec: Codec):
        if not is_causal(codec):
            raise NotCausal("the model is not causal (model.causal: false): streaming needs a causal model")
        self.codec = codec
        decoder = codec.decoder
        self._frames: Callable[[Tensor], Tensor]
        if isinstance(decoder, SEANetDecoder):
            self._frames = self._seanet(decoder)
        elif isinstance(decoder, VocosDecoder):
            self._frames = self._vocos(decoder)
        else:
            raise NotCausal(f"no streaming form for the decoder {type(decoder).__name__}")
        self.frames_in = 0

    @torch.inference_mode()
    def decode(self, codes: Tensor) -> Tensor:
        codes = torch.as_tensor(codes, dtype=torch.int64)
        if codes.dim() != 2 or codes.shape[-1] == 0:
            return torch.zeros(0)
        self.frames_in += codes.shape[-1]
        return self._frames(self.codec.quantizer.decode(codes[None]))

    @torch.inference_mode()
    def flush(self) -> Tensor:
        return self._flush()

    def _seanet(self, decoder: SEANetDecoder) -> Callable[[Tensor], Tensor]:
        layers = stream_layer(decoder.model)
        self._flush = lambda: torch.zeros(0)

        def frames(latents: Tensor) -> Tensor:
            y = layers(latents)
            if decoder.output_activation == "tanh":
                y = torch.tanh(y)
            return (decoder.output_scale * y)[0, 0]

        return frames

    def _vocos(self, decoder: VocosDecoder) -> Callable[[Tensor], Tensor]:
        head = decoder.head
        if head.lookahead is None:
            raise NotCausal("the Vocos head is not causal: the model cannot stream")
        # The head's frames: `upsample` per code frame at hop `hop` (a fraction of the code hop).
        lookahead, hop, per_code = head.lookahead, head.hop_length, head.upsample
        embed = _DepthwiseCausal(decoder.embed)
        blocks = [(_DepthwiseCausal(cast(ConvNeXtBlock, block).dwconv), block) for block in decoder.blocks]
        envelope = steady_envelope(head.window, hop)
        # Overlap-add buffer: sample 0 of it is output sample `emitted`; head frame j lands at (j - a) * hop.
        self._ola = torch.zeros(head.n_fft)
        self._emitted = 0

        def emit(head_frames_ready: int) -> Tensor:
            count = head_frames_ready * hop - self._emitted
            out, self._ola = self._ola[:count], F.pad(self._ola[count:], (0, count))
            self._emitted += count
            return out / envelope.repeat(count // hop)

        def frames(latents: Tensor) -> Tensor:
            x = decoder.norm(embed(latents).transpose(1, 2)).transpose(1, 2)
            for conv, block in blocks:
                x = x + cast(ConvNeXtBlock, block).pointwise(conv(x))
            windowed = head.frames(decoder.final_norm(x.transpose(1, 2)))[0]  # [n_fft, F * upsample]
            first = self.frames_in * per_code - windowed.shape[-1]
            for i in range(windowed.shape[-1]):
                start = (first + i - lookahead) * hop - self._emitted  # may be < 0 for the first frames
                frame = windowed[:, i]
                if start < 0:
                    frame, start = frame[-start:], 0
                if start + frame.shape[0] > self._ola.shape[0]:  # several frames in one call
                    self._ola = F.pad(self._ola, (0, start + frame.shape[0] - self._ola.shape[0]))
                self._ola[start : start + frame.shape[0]] += frame
            return emit(max(0, self.frames_in * per_code - lookahead))

        def flush() -> Tensor:
            return emit(self.frames_in * per_code)

        self._flush = flush
        return frames
