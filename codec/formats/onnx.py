"""An export as ONNX graphs: the encoder with the quantizer's lookup, the decoder with the codebooks, and for causal
models step graphs that carry each layer's state as explicit inputs and outputs.

Written by :func:`export_onnx` into a folder (``telucodec export-onnx EXPORT DIR``, or ``pipeline.export --onnx``):

* ``encoder.onnx``: ``audio`` float32 ``[1, 1, T]`` (``T`` a multiple of the hop; the caller pads with zeros as
  ``Codec.encode`` does) -> ``codes`` int64 ``[num_levels, T / hop]``: the SEANet encoder and every level's
  nearest-neighbour lookup (float32 distances ``||e||^2 - 2 x.e``, as :meth:`EuclideanCodebook.assign`); the codes
  of the first ``n`` levels do not depend on the others, so a caller wanting ``n`` levels takes the first ``n`` rows.
* ``decoder.onnx``: ``codes`` int64 ``[n, F]`` (``1 <= n <= num_levels``) -> ``audio`` float32 ``[1, 1, F * hop]``:
  the codebooks' sum (level by level, in the order of :meth:`ResidualVectorQuantizer.decode`) and the decoder.
* causal models: ``encoder_step.onnx`` (``audio [1, 1, C * hop]``, ``state_i``... -> ``codes [num_levels, C]``,
  ``new_state_i``...) and ``decoder_step.onnx`` (``codes [n, C]``, ``state_i``... -> ``audio [C * hop]``, ``tail``,
  ``new_state_i``...), see :class:`DecoderStep`; every state starts as zeros of the shape ``onnx.json`` gives.
* ``*.int8.onnx`` (``int8=True``): the same graphs with their large matrix products dynamically quantized to int8
  (:func:`quantize_int8`), the quantizer's lookups and the iSTFT left in float32.
* ``onnx.json``: the model id, rate, hop, levels and codebook size of the export they came from (the runtime checks
  them against the export it is given), the opset, each file's sha256, and the step graphs' states.

Weight norm is folded (the effective weight computed once); the Vocos head's inverse STFT is written with operators
ONNX has: the inverse real DFT as a matrix product with a precomputed basis (window included) and the overlap-add
as a transposed convolution with an identity kernel; reflect padding as a gather, so that signals shorter than the
pad give what :func:`codec.model.seanet.pad1d` gives. The graphs are traced with torch's TorchScript-based exporter
(``dynamo=False``): it needs only the ``onnx`` package and writes the step graphs' lists of states as plain inputs.
"""

from __future__ import annotations

import hashlib
import io
import math
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from codec.formats.export import ExportedCodec
from codec.model.activations import Snake1d
from codec.model.codec import Codec
from codec.model.layer import NotCausal, frozen, streaming_layer
from codec.model.seanet import SLSTM, ResidualUnit, SConv1d, SConvTranspose1d, SEANetDecoder, SEANetEncoder
from codec.model.streaming import is_causal
from codec.model.vocos import ConvNeXtBlock, ISTFTHead, VocosDecoder, steady_envelope
from codec.quantization.core_vq import ResidualVectorQuantizer
from codec.quantization.factorised import FactorisedCodebook
from codec.runtime.io import atomic_path, write_json_atomic

OPSET = 17
ONNX_FORMAT = "telucodec-onnx"
ONNX_VERSION = 1
MANIFEST = "onnx.json"
FILES = {
    "encoder": "encoder.onnx",
    "decoder": "decoder.onnx",
    "encoder_step": "encoder_step.onnx",
    "decoder_step": "decoder_step.onnx",
}
INT8_SUFFIX = ".int8.onnx"
TRACE_FRAMES = 8  # example length the graphs are traced at (every time axis is dynamic)


class OnnxExportError(ValueError):
    """The codec has a layer this exporter does not know."""


def int8_name(name: str) -> str:
    """``encoder.onnx`` -> ``encoder.int8.onnx``."""
    return name.removesuffix(".onnx") + INT8_SUFFIX


def folded(codec: Codec) -> Codec:
    """A deep copy of ``codec`` (eval mode) with every weight-norm parametrisation replaced by its effective weight
    (:func:`codec.model.layer.frozen`)."""
    return cast(Codec, frozen(codec))


# ------------------------------------------------------------------------------------------ stateless layers


def _length(x: Tensor) -> Tensor:
    """The last axis' length as a 0-d int64 tensor: traced as a Shape op, so the graph's time axis stays dynamic."""
    return torch._shape_as_tensor(x)[-1]


def reflect_pad(x: Tensor, left: int, right: int) -> Tensor:
    """:func:`codec.model.seanet.pad1d`'s reflect padding as one gather: the signal zero-extended to more than the pad
    (a no-op for long signals), reflected about its ends."""
    longest = max(left, right)
    if longest == 0:
        return x
    length = _length(x)
    span = torch.clamp(length, min=longest + 1)  # the length the reflection sees
    # arange of a 0-d tensor: traced as a Range over the dynamic length (torch's stubs only list Python numbers)
    position = (cast(Any, torch.arange)(length + left + right, device=x.device) - left).abs()
    index = torch.where(position >= span, 2 * (span - 1) - position, position)
    return F.pad(x, (0, longest + 1)).index_select(-1, index)


def _pad(x: Tensor, left: int, right: int, mode: str, shortest: int) -> Tensor:
    """``pad1d`` for inputs of at least ``shortest`` samples: ONNX's Pad where that is longer than the pad (its
    reflect mode needs that), else :func:`reflect_pad`."""
    if mode == "reflect" and shortest <= max(left, right):
        return reflect_pad(x, left, right)
    return F.pad(x, (left, right), mode=mode) if left or right else x


class _Conv(nn.Module):
    """:class:`SConv1d` on a length that is a multiple of its stride (so no extra right padding), at least ``shortest``
    samples (those of one code frame at its rate)."""

    def __init__(self, layer: SConv1d, shortest: int):
        super().__init__()
        self.conv = layer.conv
        kernel = (self.conv.kernel_size[0] - 1) * self.conv.dilation[0] + 1
        total = kernel - self.conv.stride[0]
        self.right: int = 0 if layer.causal else total // 2
        self.left: int = total - self.right
        self.mode, self.shortest = layer.pad_mode, shortest

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(_pad(x, self.left, self.right, self.mode, self.shortest))


class _ConvTranspose(nn.Module):
    def __init__(self, layer: SConvTranspose1d):
        super().__init__()
        self.convtr = layer.convtr
        total = self.convtr.kernel_size[0] - self.convtr.stride[0]
        self.right = total if layer.causal else total // 2
        self.left = total - self.right

    def forward(self, x: Tensor) -> Tensor:
        y = self.convtr(x)
        return y[..., self.left : -self.right] if self.right else y[..., self.left :]


class _Residual(nn.Module):
    def __init__(self, unit: ResidualUnit, per_frame: int):
        super().__init__()
        self.block, _ = graph_layer(unit.block, per_frame)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def graph_layer(module: nn.Module, per_frame: int) -> tuple[nn.Module, int]:
    """The exportable form of a SEANet layer (pointwise ones and the LSTM as they are) whose input has ``per_frame``
    samples per code frame, and its output's samples per code frame."""
    if isinstance(module, nn.Sequential):
        layers = []
        for m in module:
            layer, per_frame = graph_layer(m, per_frame)
            layers.append(layer)
        return nn.Sequential(*layers), per_frame
    if isinstance(module, SConv1d):
        return _Conv(module, per_frame), per_frame // module.conv.stride[0]
    if isinstance(module, SConvTranspose1d):
        return _ConvTranspose(module), per_frame * module.convtr.stride[0]
    if isinstance(module, ResidualUnit):
        return _Residual(module, per_frame), per_frame
    if isinstance(module, (SLSTM, nn.ELU, Snake1d)):
        return module, per_frame
    raise OnnxExportError(f"no ONNX form for {type(module).__name__}")


# ------------------------------------------------------------------------------------------------- quantizer


class Lookup(nn.Module):
    """The residual quantizer's codebooks as constants: nearest-entry codes of latents, and latents of codes."""

    embedding: Tensor
    squared_norms: Tensor

    def __init__(self, quantizer: ResidualVectorQuantizer):
        super().__init__()
        levels = quantizer.levels()
        entries = [cb.entries() for cb in levels]  # as the torch path derives them (embedding, squared norms)
        self.register_buffer("embedding", torch.stack([e for e, _ in entries]).detach().clone())  # [L, K, d]
        self.register_buffer("squared_norms", torch.stack([s for _, s in entries]).detach().clone())  # [L, K]
        self.num_levels = len(levels)
        self.factorised = isinstance(levels[0], FactorisedCodebook)
        self.in_proj = nn.ModuleList(cast(FactorisedCodebook, cb).in_proj for cb in levels if self.factorised)
        self.out_proj = nn.ModuleList(cast(FactorisedCodebook, cb).out_proj for cb in levels if self.factorised)

    def _entry(self, level: int, codes: Tensor) -> Tensor:
        """Level ``level``'s entries of ``codes [F]`` as latents ``[F, D]``."""
        entry = self.embedding[level].index_select(0, codes)
        return self.out_proj[level](entry) if self.factorised else entry

    def encode(self, frames: Tensor) -> Tensor:
        """Latent frames ``[F, D]`` -> codes ``[num_levels, F]`` int64."""
        residual, codes = frames, []
        for level in range(self.num_levels):
            vectors = F.normalize(self.in_proj[level](residual), dim=-1) if self.factorised else residual
            distances = torch.addmm(self.squared_norms[level], vectors, self.embedding[level].t(), alpha=-2.0)
            code = distances.argmin(dim=1)
            codes.append(code)
            residual = residual - self._entry(level, code)
        return torch.stack(codes)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[n, F]`` (``n`` dynamic, at most ``num_levels``) -> latents ``[1, D, F]``.

        Every level is looked up (a level past ``n`` reads row ``n - 1`` and is replaced by zeros), and the levels
        are added in order: the sum equals the torch path's bit for bit."""
        count = torch._shape_as_tensor(codes)[0]
        total: Tensor | None = None
        for level in range(self.num_levels):
            index = torch.clamp(torch.full((1,), level, dtype=torch.int64), max=count - 1)
            entry = self._entry(level, codes.index_select(0, index)[0])
            entry = torch.where(level < count, entry, torch.zeros_like(entry)) if level else entry
            total = entry if total is None else total + entry
        assert total is not None
        return total.t().unsqueeze(0)


# ----------------------------------------------------------------------------------------------- iSTFT head


def irfft_basis(n_fft: int, window: Tensor) -> Tensor:
    """``[n_fft, 2 * bins]`` float32: ``basis @ [real; imag]`` is ``irfft(real + i imag, n_fft) * window`` (the
    imaginary parts of the DC and Nyquist bins ignored, as irfft does). Computed in float64."""
    bins = n_fft // 2 + 1
    t = torch.arange(n_fft, dtype=torch.float64)[:, None]
    k = torch.arange(bins, dtype=torch.float64)[None, :]
    weight = torch.full((bins,), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0
    angle = 2 * math.pi * ((t * k) % n_fft) / n_fft  # reduced first: exact angles for large t * k
    cos = torch.cos(angle) * weight / n_fft
    sin = -torch.sin(angle) * weight / n_fft
    sin[:, 0] = 0.0
    if n_fft % 2 == 0:
        sin[:, -1] = 0.0
    w = window.detach().to(torch.float64)[:, None]
    return torch.cat([cos * w, sin * w], dim=1).float()


class ISTFT(nn.Module):
    """:class:`ISTFTHead` without ``torch.fft``: features ``[1, F, C]`` -> windowed frames ``[1, n_fft, F * s]``
    (:meth:`frames`) -> waveform (:meth:`forward`, "same" or causal layout as the head)."""

    basis: Tensor
    dc_mask: Tensor
    identity: Tensor
    window_square: Tensor
    envelope: Tensor

    def __init__(self, head: ISTFTHead):
        super().__init__()
        self.out = head.out
        self.n_fft, self.hop, self.upsample, self.lookahead = head.n_fft, head.hop_length, head.upsample, head.lookahead
        self.bins = self.n_fft // 2 + 1
        self.max_log_magnitude = head.max_log_magnitude
        self.register_buffer("basis", irfft_basis(self.n_fft, head.window))
        self.register_buffer("dc_mask", head.dc_mask.detach().clone()[:, None])
        self.register_buffer("identity", torch.eye(self.n_fft)[:, None, :])  # overlap-add kernel [n_fft, 1, n_fft]
        self.register_buffer("window_square", head.window.detach().square()[None, None, :])  # [1, 1, n_fft]
        self.register_buffer("envelope", steady_envelope(head.window.detach(), self.hop))

    def frames(self, x: Tensor) -> Tensor:
        y = self.out(x).reshape(1, -1, self.n_fft + 2).transpose(1, 2)  # [1, n_fft + 2, F * s]
        log_mag, phase = y[:, : self.bins], y[:, self.bins :]
        mag = torch.exp(log_mag.clamp(max=self.max_log_magnitude)) * self.dc_mask
        return torch.matmul(self.basis, torch.cat([mag * torch.cos(phase), mag * torch.sin(phase)], dim=1))

    def overlap_add(self, frames: Tensor) -> Tensor:
        """``[1, n_fft, M]`` -> ``[1, 1, (M - 1) * hop + n_fft]``."""
        return F.conv_transpose1d(frames, self.identity, stride=self.hop)

    def divide(self, y: Tensor) -> Tensor:
        """Samples ``[..., k * hop]`` starting at a multiple of the hop, divided by the steady envelope."""
        return (y.reshape(1, -1, self.hop) / self.envelope).reshape(y.shape[:-1] + (-1,))

    def forward(self, x: Tensor) -> Tensor:
        frames = self.frames(x)
        y = self.overlap_add(frames)
        if self.lookahead is None:  # istft_same
            pad = (self.n_fft - self.hop) // 2
            # The summed squared window, as torch's fold of window^2 per frame, one channel: n_fft products per frame.
            envelope = F.conv_transpose1d(torch.ones_like(frames[:, :1]), self.window_square, stride=self.hop)
            if pad:
                y, envelope = y[..., pad:-pad], envelope[..., pad:-pad]
            return y / envelope.clamp_min(1e-11)
        # istft_causal: output sample t is overlap-add sample t + lookahead * hop
        start = self.lookahead * self.hop
        extra = max(0, start + self.hop - self.n_fft)
        trim = self.n_fft + extra - start - self.hop
        y = F.pad(y, (0, extra)) if extra else y
        y = y[..., start:-trim] if trim else y[..., start:]
        return self.divide(y)


class _Vocos(nn.Module):
    def __init__(self, decoder: VocosDecoder):
        super().__init__()
        self.decoder = decoder
        self.head = ISTFT(decoder.head)

    def features(self, z: Tensor) -> Tensor:
        d = self.decoder
        x = d.embed(F.pad(z, (d.embed_left_pad, 0)) if d.embed_left_pad else z)
        x = d.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in d.blocks:
            x = block(x)
        return d.final_norm(x.transpose(1, 2))

    def forward(self, z: Tensor) -> Tensor:
        return self.head(self.features(z))


class _SEANetDecoder(nn.Module):
    def __init__(self, decoder: SEANetDecoder):
        super().__init__()
        self.model, _ = graph_layer(decoder.model, 1)
        self.tanh = decoder.output_activation == "tanh"
        self.output_scale = decoder.output_scale

    def forward(self, z: Tensor) -> Tensor:
        y = self.model(z)
        return self.output_scale * (torch.tanh(y) if self.tanh else y)


def _decoder_body(decoder: nn.Module) -> nn.Module:
    if isinstance(decoder, VocosDecoder):
        return _Vocos(decoder)
    if isinstance(decoder, SEANetDecoder):
        return _SEANetDecoder(decoder)
    raise OnnxExportError(f"no ONNX form for the decoder {type(decoder).__name__}")


class EncoderGraph(nn.Module):
    """``audio [1, 1, T]`` (``T`` a multiple of the hop) -> ``codes [num_levels, T / hop]`` int64."""

    def __init__(self, codec: Codec):
        super().__init__()
        if not isinstance(codec.encoder, SEANetEncoder):
            raise OnnxExportError(f"no ONNX form for the encoder {type(codec.encoder).__name__}")
        self.encoder, _ = graph_layer(codec.encoder.model, codec.hop_length)
        self.quantizer = Lookup(codec.quantizer)

    def forward(self, audio: Tensor) -> Tensor:
        latents = self.encoder(audio.clamp(-1.0, 1.0))  # [1, D, F]
        return self.quantizer.encode(latents[0].t())


class DecoderGraph(nn.Module):
    """``codes [n, F]`` int64 -> ``audio [1, 1, F * hop]``."""

    def __init__(self, codec: Codec):
        super().__init__()
        self.quantizer = Lookup(codec.quantizer)
        self.decoder = _decoder_body(codec.decoder)

    def forward(self, codes: Tensor) -> Tensor:
        return self.decoder(self.quantizer.decode(codes))


# -------------------------------------------------------------------------------------------- step graphs


# The SEANet layers and the ConvNeXt blocks step as they do in codec.model.streaming: through their own
# StreamingLayer.step, whose states are these graphs' explicit inputs and outputs (their order, init_state's).


class EncoderStep(nn.Module):
    """``audio [1, 1, C * hop]``, states -> ``codes [num_levels, C]``, new states: the causal encoder chunk by chunk
    (what :class:`codec.model.streaming.StreamingEncoder` runs on each whole hop of audio)."""

    def __init__(self, codec: Codec):
        super().__init__()
        if not is_causal(codec):
            raise NotCausal("the model is not causal (model.causal: false): streaming needs a causal model")
        self.encoder = streaming_layer(codec.encoder)
        self.quantizer = Lookup(codec.quantizer)

    def initial(self) -> list[Tensor]:
        return self.encoder.init_state()

    def forward(self, audio: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        latents, new = self.encoder.step(audio.clamp(-1.0, 1.0), list(states))
        return (self.quantizer.encode(latents[0].t()), *new)


class _VocosStep(nn.Module):
    """The causal Vocos decoder chunk by chunk; states: the embedding's and each block's last ``kernel - 1`` inputs
    (the blocks step themselves), and the overlap-add's pending ``n_fft - hop`` samples (the sums for the samples
    after those emitted). The head is :class:`ISTFT`, written with ONNX's operators, not the decoder's own step."""

    def __init__(self, decoder: VocosDecoder):
        super().__init__()
        if decoder.head.lookahead is None:
            raise NotCausal("the Vocos head is not causal: the model cannot stream")
        self.decoder = decoder
        self.keep = decoder.embed.kernel_size[0] - 1
        self.head = ISTFT(decoder.head)
        self.pending = self.head.n_fft - self.head.hop
        self.tail = cast(int, self.head.lookahead) * self.head.hop  # what flush() gives: the look-ahead's samples

    def _blocks(self) -> list[ConvNeXtBlock]:
        return [cast(ConvNeXtBlock, block) for block in self.decoder.blocks]

    def initial(self) -> list[Tensor]:
        embed = self.decoder.embed
        states = [torch.zeros(1, embed.in_channels, self.keep)] if self.keep else []
        states += [s for block in self._blocks() for s in block.init_state()]
        return states + ([torch.zeros(1, 1, self.pending)] if self.pending else [])

    def step(self, z: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        features, new, at = self.decoder.trunk_step(z, states)
        y = self.head.overlap_add(self.head.frames(features))  # [1, 1, M hop + pending]
        if self.pending:
            y = torch.cat([y[..., : self.pending] + states[at], y[..., self.pending :]], dim=-1)
            ready, held = y[..., : -self.pending], y[..., -self.pending :]
            new.append(held)
        else:
            ready, held = y, y[..., :0]
        samples = self.head.divide(ready).reshape(-1)
        if not self.tail:
            return samples, new
        # The samples flush() would give if the stream ended here: the held sums of the look-ahead's frames.
        tail = F.pad(held, (0, max(0, self.tail - self.pending)))[..., : self.tail]
        return torch.cat([samples, self.head.divide(tail).reshape(-1)]), new


class _SEANetStep(nn.Module):
    """The causal SEANet decoder's own step: every frame's samples at once, no tail."""

    def __init__(self, decoder: SEANetDecoder):
        super().__init__()
        self.decoder = decoder
        self.tail = 0

    def initial(self) -> list[Tensor]:
        return self.decoder.init_state()

    def step(self, z: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        y, new = self.decoder.step(z, states)
        return y.reshape(-1), new


class DecoderStep(nn.Module):
    """``codes [n, C]``, states -> ``audio [C * hop]``, ``tail [delay]``, new states: the causal decoder chunk by chunk.

    ``audio`` lags the codes by ``delay`` samples (the Vocos head's look-ahead, 0 for a SEANet decoder): over a
    stream, drop the first ``delay`` samples of the concatenated ``audio`` and append the last call's ``tail`` (the
    faded-out look-ahead, what :meth:`codec.model.streaming.StreamingDecoder.flush` gives). That is the same audio
    as ``StreamingDecoder`` and as ``Codec.decode`` of all the codes, up to float rounding.
    """

    def __init__(self, codec: Codec):
        super().__init__()
        if not is_causal(codec):
            raise NotCausal("the model is not causal (model.causal: false): streaming needs a causal model")
        self.quantizer = Lookup(codec.quantizer)
        decoder = codec.decoder
        self.body: _VocosStep | _SEANetStep
        if isinstance(decoder, VocosDecoder):
            self.body = _VocosStep(decoder)
        elif isinstance(decoder, SEANetDecoder):
            self.body = _SEANetStep(decoder)
        else:
            raise NotCausal(f"no streaming form for the decoder {type(decoder).__name__}")
        self.delay = self.body.tail

    def initial(self) -> list[Tensor]:
        return self.body.initial()

    def forward(self, codes: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        samples, new = self.body.step(self.quantizer.decode(codes), list(states))
        if self.delay:
            return (samples[: -self.delay], samples[-self.delay :], *new)
        return (samples, samples[:0], *new)


# --------------------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class OnnxInfo:
    """What :func:`export_onnx` wrote."""

    folder: Path
    files: dict[str, str]  # graph name -> file name
    manifest: dict[str, Any]


def _trace(module: nn.Module, args: tuple[Tensor, ...], inputs: list[str], outputs: list[str], axes, opset: int):
    """The ONNX bytes of ``module`` traced on ``args``."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            module.eval(),
            args,
            cast(Any, buffer),  # a file object works as well as a path
            dynamo=False,
            opset_version=opset,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    return buffer.getvalue()


def _with_metadata(data: bytes, metadata: dict[str, str]) -> bytes:
    import onnx

    model = onnx.load_from_string(data)
    onnx.helper.set_model_props(model, metadata)
    model.producer_name = "telucodec"
    return model.SerializeToString()


def _write(folder: Path, name: str, data: bytes) -> str:
    with atomic_path(folder / name) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def quantize_int8(data: bytes, convolutions: bool = False) -> bytes:
    """The graph with its weight matrix products dynamically quantized to int8 (weights int8 per tensor, activations
    quantized per call): the decoder's pointwise layers and output layer, and with ``convolutions`` the convolutions
    too (ConvInteger). The quantizer's lookups (Gemm), the inverse-DFT basis and the overlap-add stay float32.

    Only decoders are exported so: on the shipped codec an int8 encoder (its convolutions as ConvInteger) kept 12% of
    the codes and ran slower than float32 (``benchmarks/onnx_speed.py`` measures it)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load_from_string(data)
    weights = {init.name for init in model.graph.initializer}
    chosen = [
        n.name
        for n in model.graph.node
        if (n.op_type == "MatMul" and not n.name.endswith("head/MatMul") and n.input[1] in weights)
        or (convolutions and n.op_type == "Conv")
    ]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = Path(tmp) / "int8.onnx"
        quantize_dynamic(model, out, nodes_to_quantize=chosen, weight_type=QuantType.QInt8)
        return out.read_bytes()


def _state_specs(states: list[Tensor]) -> list[dict[str, Any]]:
    return [
        {"input": f"state_{i}", "output": f"new_state_{i}", "shape": list(s.shape), "dtype": "float32"}
        for i, s in enumerate(states)
    ]


def export_onnx(exported: ExportedCodec, folder: str | Path, *, int8: bool = False, opset: int = OPSET) -> OnnxInfo:
    """Write the ONNX graphs of ``exported`` and ``onnx.json`` (see the module docstring) into ``folder``."""
    if opset < 17:
        raise ValueError(f"opset {opset}: the graphs need opset 17 or newer (LayerNormalization)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    codec = folded(exported.codec.float())
    hop, levels = codec.hop_length, codec.num_levels
    meta = {
        "model_id": exported.model_id,
        "sample_rate": str(codec.sample_rate),
        "hop_length": str(hop),
        "num_levels": str(levels),
        "codebook_size": str(int(codec.quantizer.codebook_size)),
    }
    graphs: dict[str, bytes] = {
        "encoder": _trace(
            EncoderGraph(codec),
            (torch.zeros(1, 1, TRACE_FRAMES * hop),),
            ["audio"],
            ["codes"],
            {"audio": {2: "samples"}, "codes": {1: "frames"}},
            opset,
        ),
        "decoder": _trace(
            DecoderGraph(codec),
            (torch.zeros(levels, TRACE_FRAMES, dtype=torch.int64),),
            ["codes"],
            ["audio"],
            {"codes": {0: "levels", 1: "frames"}, "audio": {2: "samples"}},
            opset,
        ),
    }
    streaming: dict[str, Any] = {}
    if is_causal(codec):
        enc = EncoderStep(codec)
        enc_states = enc.initial()
        names = [f"state_{i}" for i in range(len(enc_states))]
        new_names = [f"new_state_{i}" for i in range(len(enc_states))]
        graphs["encoder_step"] = _trace(
            enc,
            (torch.zeros(1, 1, TRACE_FRAMES * hop), *enc_states),
            ["audio", *names],
            ["codes", *new_names],
            {"audio": {2: "samples"}, "codes": {1: "frames"}},
            opset,
        )
        dec = DecoderStep(codec)
        dec_states = dec.initial()
        names = [f"state_{i}" for i in range(len(dec_states))]
        new_names = [f"new_state_{i}" for i in range(len(dec_states))]
        graphs["decoder_step"] = _trace(
            dec,
            (torch.zeros(levels, TRACE_FRAMES, dtype=torch.int64), *dec_states),
            ["codes", *names],
            ["audio", "tail", *new_names],
            {"codes": {0: "levels", 1: "frames"}, "audio": {0: "samples"}},
            opset,
        )
        streaming = {
            "encoder_step": {"states": _state_specs(enc_states)},
            "decoder_step": {"states": _state_specs(dec_states), "delay_samples": dec.delay},
        }
    files: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for name, data in graphs.items():
        data = _with_metadata(data, {**meta, "graph": name})
        files[name] = FILES[name]
        hashes[FILES[name]] = _write(folder, FILES[name], data)
        if int8 and name.startswith("decoder"):  # an int8 encoder changes most codes (see quantize_int8)
            files[f"{name}_int8"] = int8_name(FILES[name])
            hashes[int8_name(FILES[name])] = _write(folder, int8_name(FILES[name]), quantize_int8(data))
    for stale in folder.glob("*.onnx"):  # graphs of an earlier export (another model, or int8 no longer asked)
        if stale.name not in hashes:
            stale.unlink()
    manifest = {
        "format": ONNX_FORMAT,
        "format_version": ONNX_VERSION,
        **{k: v if k == "model_id" else int(v) for k, v in meta.items()},
        "causal": is_causal(codec),
        "opset": opset,
        "files": files,
        "sha256": hashes,
        "streaming": streaming,
        "torch": torch.__version__.split("+")[0],
    }
    write_json_atomic(folder / MANIFEST, manifest)
    return OnnxInfo(folder, files, manifest)


def codes_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of equal entries of two code arrays of one shape."""
    if a.shape != b.shape:
        raise ValueError(f"codes of shapes {a.shape} and {b.shape}")
    return float((np.asarray(a) == np.asarray(b)).mean()) if a.size else 1.0
