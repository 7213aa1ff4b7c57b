"""Vocos decoder: ConvNeXt blocks at the code frame rate and an inverse-STFT head (Siuzdak, 2023).

Shapes: latents ``[B, D, F]`` -> waveform ``[B, 1, F * hop]``.

Why it suits a codec trained on little compute: all the learned layers run at the frame rate (50 Hz),
where a wide 1x1 layer is one large matrix product, instead of at 400 Hz .. 16 kHz like a SEANet
decoder's; and the waveform comes from an iSTFT, not from transposed convolutions, whose overlapping
kernels print tones at multiples of ``sample_rate / stride product`` into the output until a long
adversarial training irons them out. Each frame predicts the log-magnitude and the phase of one
``n_fft``-sample STFT frame; the frames overlap-add with a Hann window at the codec's hop.

The decoder and its blocks implement :class:`codec.model.layer.StreamingLayer`: causal, a chunk of code frames
steps through the convolutions with their last ``kernel - 1`` inputs kept, and the head's overlap-add holds the
sums of the samples its next frames still reach.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from codec.config.model import ModelConfig, VocosConfig
from codec.model.layer import NotCausal, Reach, State, StreamingLayer, kept_inputs_step


class ConvNeXtBlock(StreamingLayer):
    """Depthwise conv (``kernel_size`` frames) -> LayerNorm -> Linear -> GELU -> Linear, scaled, plus skip.

    ``[B, C, F] -> [B, C, F]``. The layer scale starts at ``1 / num_layers`` so the stack starts close to
    the identity (Vocos's choice) and gradients reach the first blocks at once. Streaming (causal): the state is
    the depthwise conv's last ``kernel_size - 1`` inputs ``[1, C, kernel_size - 1]``.
    """

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float, causal: bool = False):
        super().__init__()
        # Causal: all the padding on the left (a frame sees only itself and the frames before it).
        self.causal = causal
        self.left_pad = kernel_size - 1 if causal else 0
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=0 if causal else kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(F.pad(x, (self.left_pad, 0)) if self.left_pad else x)
        return x + self.pointwise(y)

    def pointwise(self, y: torch.Tensor) -> torch.Tensor:
        """What follows the depthwise conv, frame by frame: ``[B, C, F] -> [B, C, F]`` (the residual branch)."""
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y.transpose(1, 2)))))
        return (self.gamma * y).transpose(1, 2)

    def reach(self) -> Reach | None:
        return Reach(Fraction(self.dwconv.kernel_size[0] - 1), Fraction(1))

    def init_state(self) -> State:
        if not self.causal:
            raise NotCausal("a ConvNeXt block is not causal: the model cannot stream")
        keep = self.dwconv.kernel_size[0] - 1
        return [self.dwconv.weight.new_zeros(1, self.dwconv.in_channels, keep)] if keep else []

    def state_size(self) -> int:
        return 1 if self.dwconv.kernel_size[0] > 1 else 0

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        y, state = kept_inputs_step(self.dwconv, x, state, self.dwconv.kernel_size[0] - 1)
        return x + self.pointwise(y), state


class ISTFTHead(nn.Module):
    """Features ``[B, F, C]`` -> waveform ``[B, 1, F * hop]`` through an inverse STFT with "same" padding.

    A linear layer gives per frame ``n_fft // 2 + 1`` log-magnitudes and as many phases; the
    spectrum ``exp(m) * (cos p + i sin p)`` is inverted frame by frame (irfft), windowed, overlap-added
    and divided by the summed squared window, then ``(n_fft - hop) / 2`` samples are trimmed on each
    side so that frame ``f`` is centred on samples ``[f * hop, (f + 1) * hop)`` (what the encoder saw).
    The DC bin is held at zero: the input audio is DC-free (``prepare`` removes it) and no loss term
    sees a constant offset well, so a free DC bin drifts (a measured +25 dB at DC in an earlier decoder).
    The log-magnitude is capped at ``ln(n_fft)``, above a full-scale sine's peak, so an early step
    cannot blow up the output.

    With ``upsample`` ``s > 1`` the linear layer gives ``s`` spectra per feature frame, read as ``s`` consecutive
    iSTFT frames at ``hop / s`` (a pixel shuffle in time): ``[B, F, C]`` -> ``[B, 1, F * s * (hop / s)]``, the same
    length at ``s`` times the head's frame rate, for the cost of a wider output layer.

    Causal (``lookahead`` frames ``a`` given, counted at the head's hop): head frame ``j``'s window covers samples
    ``[(j - a) hop, (j - a) hop + n_fft)``, so the block ``[j hop, (j + 1) hop)`` is complete once head frame
    ``j + a`` is decoded (``a = 0``: no wait beyond its own frame; the centred layout sits at ``a = 1.5``; ``a =
    n_fft / hop``, the most allowed, puts each window wholly before its frame). With ``upsample`` ``s``, the code
    frame ``f`` gives head frames ``f s .. f s + s - 1``: ``a = s`` waits one code frame. The overlap-add is
    divided by the window's steady-state envelope (the periodic sum of ``w^2`` every hop), not the one of the
    frames present: the first blocks fade in as after silence and the last ``a`` blocks fade out, the same offline
    and streaming (:mod:`codec.model.streaming`), instead of dividing the edges by a near-zero sum.
    """

    window: torch.Tensor
    dc_mask: torch.Tensor

    def __init__(self, dim: int, n_fft: int, hop_length: int, lookahead: int | None = None, upsample: int = 1):
        super().__init__()
        if upsample < 1:
            raise ValueError(f"upsample must be >= 1, got {upsample}")
        if lookahead is None and (n_fft - hop_length) % 2:
            raise ValueError(f"n_fft - hop must be even for a centred iSTFT, got {n_fft} and {hop_length}")
        if lookahead is not None and (n_fft % hop_length or not 0 <= lookahead <= n_fft // hop_length):
            raise ValueError("a causal iSTFT needs n_fft a multiple of the hop and 0 <= lookahead <= n_fft / hop")
        self.n_fft, self.hop_length, self.lookahead, self.upsample = n_fft, hop_length, lookahead, upsample
        self.out = nn.Linear(dim, upsample * (n_fft + 2))
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        bins = n_fft // 2 + 1
        dc_mask = torch.ones(bins)
        dc_mask[0] = 0.0
        self.register_buffer("dc_mask", dc_mask, persistent=False)
        self.max_log_magnitude = math.log(n_fft)

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``[B, F, C]`` -> complex spectrum ``[B, n_fft // 2 + 1, F * upsample]`` (DC bin zero)."""
        y = self.out(x)  # [B, F, upsample * (n_fft + 2)]
        y = y.reshape(y.shape[0], y.shape[1] * self.upsample, self.n_fft + 2)  # frame f's spectra f*s .. f*s + s - 1
        log_mag, phase = y.transpose(1, 2).float().chunk(2, dim=1)  # [B, bins, F * upsample] each
        mag = torch.exp(log_mag.clamp(max=self.max_log_magnitude)) * self.dc_mask[:, None]
        return torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lookahead is None:
            return istft_same(self.spectrum(x), self.n_fft, self.hop_length, self.window)
        return istft_causal(self.spectrum(x), self.n_fft, self.hop_length, self.window, self.lookahead)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``[B, F, C]`` -> windowed time frames ``[B, n_fft, F]`` (float32), to be overlap-added."""
        return windowed_frames(self.spectrum(x), self.n_fft, self.window)


def windowed_frames(spec: torch.Tensor, n_fft: int, window: torch.Tensor) -> torch.Tensor:
    """``spec [B, n_fft // 2 + 1, F]`` -> ``irfft(spec) * window`` as ``[B, n_fft, F]``, in float32."""
    with torch.autocast(device_type=spec.device.type, enabled=False):
        return torch.fft.irfft(spec, n_fft, dim=1) * window[None, :, None]


def steady_envelope(window: torch.Tensor, hop_length: int) -> torch.Tensor:
    """``[hop]``: the sum of ``window^2`` over its shifts by multiples of ``hop`` (1.5 for a periodic Hann window
    at a quarter overlap): what every sample's overlap-add is divided by once all its frames are in."""
    return window.square().view(-1, hop_length).sum(0)


def istft_causal(spec: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, lookahead: int) -> torch.Tensor:
    """Causal inverse STFT of ``spec [B, n_fft // 2 + 1, F]`` -> ``[B, 1, F * hop_length]`` (see :class:`ISTFTHead`)."""
    frames = spec.shape[-1]
    with torch.autocast(device_type=spec.device.type, enabled=False):
        chunks = windowed_frames(spec, n_fft, window)
        length = (frames - 1) * hop_length + n_fft
        y = F.fold(chunks, output_size=(1, length), kernel_size=(1, n_fft), stride=(1, hop_length))[:, 0, 0]
        start = lookahead * hop_length  # output sample t is overlap-add sample t + a * hop
        y = F.pad(y, (0, max(0, start + frames * hop_length - length)))[:, start : start + frames * hop_length]
        y = y.reshape(y.shape[0], frames, hop_length) / steady_envelope(window, hop_length)
    return y.reshape(y.shape[0], 1, -1)


def istft_same(spec: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """Inverse STFT of ``spec [B, n_fft // 2 + 1, F]`` -> ``[B, 1, F * hop_length]`` with "same" padding.

    ``torch.istft`` only trims ``n_fft / 2`` (``center=True``), which fails the window-overlap check at the
    edges for a "same" layout; this is the overlap-add written out (as in Vocos), in float32.
    """
    frames = spec.shape[-1]
    pad = (n_fft - hop_length) // 2
    with torch.autocast(device_type=spec.device.type, enabled=False):
        chunks = torch.fft.irfft(spec, n_fft, dim=1) * window[None, :, None]  # [B, n_fft, F]
        length = (frames - 1) * hop_length + n_fft
        y = F.fold(chunks, output_size=(1, length), kernel_size=(1, n_fft), stride=(1, hop_length))
        envelope = F.fold(
            window.square()[None, :, None].expand(1, n_fft, frames),
            output_size=(1, length),
            kernel_size=(1, n_fft),
            stride=(1, hop_length),
        )
        y = y[:, 0, 0, pad : length - pad] / envelope[:, 0, 0, pad : length - pad].clamp_min(1e-11)
    return y.unsqueeze(1)


class VocosDecoder(StreamingLayer):
    """Latents ``[B, latent_dim, F]`` -> waveform ``[B, 1, F * hop_length]``.

    Embedding conv (``kernel_size`` frames) and LayerNorm, ``num_layers`` ConvNeXt blocks, LayerNorm,
    then the :class:`ISTFTHead` with ``head_upsample`` iSTFT frames per code frame, at hop ``hop_length /
    head_upsample`` and window ``n_fft`` (default 4 x that hop).

    Streaming (causal): the state is the embedding's last ``kernel_size - 1`` inputs, each block's, and the
    overlap-add's ``n_fft - hop`` pending sums ``[1, 1, n_fft - hop]`` (head hop). :meth:`step` gives the samples of
    its head frames ``lookahead`` head frames late (:meth:`delay`), the first ones before the signal's start;
    :meth:`flush` the faded-out look-ahead, as offline.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        vocos: VocosConfig = cfg.vocos
        self.dimension = cfg.latent_dim
        self.hop_length = cfg.hop_length
        self.causal = cfg.causal
        self.embed_left_pad = vocos.kernel_size - 1 if cfg.causal else 0
        self.embed = nn.Conv1d(
            cfg.latent_dim, vocos.dim, vocos.kernel_size, padding=0 if cfg.causal else vocos.kernel_size // 2
        )
        self.norm = nn.LayerNorm(vocos.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(vocos.dim, vocos.intermediate_dim, vocos.kernel_size, 1.0 / vocos.num_layers, cfg.causal)
            for _ in range(vocos.num_layers)
        )
        self.final_norm = nn.LayerNorm(vocos.dim, eps=1e-6)
        head_hop = cfg.hop_length // vocos.head_upsample
        self.head = ISTFTHead(
            vocos.dim,
            vocos.n_fft or 4 * head_hop,
            head_hop,
            vocos.lookahead_frames if cfg.causal else None,
            vocos.head_upsample,
        )
        self.apply(_init_weights)

    @property
    def span_frames(self) -> int:
        """Frames an output sample can depend on, end to end: ``kernel_size - 1`` per convolution (the
        embedding and one per block) plus the code frames whose iSTFT frames overlap a sample (``ceil(n_fft /
        hop)``) and, causal, those of its look-ahead."""
        convs = 1 + len(self.blocks)
        ahead = (self.head.lookahead or 0) * self.head.hop_length
        return convs * (self.embed.kernel_size[0] - 1) + -(-(self.head.n_fft + ahead) // self.hop_length)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.embed(F.pad(z, (self.embed_left_pad, 0)) if self.embed_left_pad else z)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x.transpose(1, 2)))

    def reach(self) -> Reach | None:
        return Reach(Fraction(self.span_frames), Fraction(1, self.hop_length))

    def _blocks(self) -> list[ConvNeXtBlock]:
        return [cast(ConvNeXtBlock, block) for block in self.blocks]

    def _pending(self) -> int:
        """Samples of the overlap-add that a next head frame still adds to."""
        return self.head.n_fft - self.head.hop_length

    def init_state(self) -> State:
        if not self.causal or self.head.lookahead is None:
            raise NotCausal("the Vocos head is not causal: the model cannot stream")
        keep = self.embed.kernel_size[0] - 1
        state = [self.embed.weight.new_zeros(1, self.embed.in_channels, keep)] if keep else []
        state += [s for block in self._blocks() for s in block.init_state()]
        return state + ([self.embed.weight.new_zeros(1, 1, self._pending())] if self._pending() else [])

    def state_size(self) -> int:
        embed = 1 if self.embed.kernel_size[0] > 1 else 0
        return embed + sum(block.state_size() for block in self._blocks()) + (1 if self._pending() else 0)

    def delay(self) -> int:
        return (self.head.lookahead or 0) * self.head.hop_length

    def trunk_step(self, z: torch.Tensor, state: State) -> tuple[torch.Tensor, State, int]:
        """The embedding and the ConvNeXt blocks stepped on latents ``[1, latent_dim, C]``: the head's input
        ``[1, C, dim]`` (after the final norm), the new states so far, and where the head's state starts in
        ``state``. The ONNX step graph (codec.formats.onnx) steps the same trunk before its own head."""
        at = 1 if self.embed.kernel_size[0] > 1 else 0
        x, new = kept_inputs_step(self.embed, z, state[:at], self.embed.kernel_size[0] - 1)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self._blocks():
            size = block.state_size()
            x, out = block.step(x, state[at : at + size])
            new += out
            at += size
        return self.final_norm(x.transpose(1, 2)), new, at

    def step(self, z: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Latents ``[1, latent_dim, C]`` -> ``[1, 1, C * hop_length]`` samples, :meth:`delay` samples late."""
        features, new, at = self.trunk_step(z, state)
        head = self.head
        hop, pending = head.hop_length, self._pending()
        windowed = head.frames(features)[0]  # [n_fft, C * upsample]
        count = windowed.shape[-1]
        # Sample 0 of the buffer is the one head frame 0 of this chunk starts on; frame i lands at i * hop. The frames
        # are added one by one, in order, onto the held sums: the sums of the offline fold, up to their order.
        held = state[at][0, 0] if pending else windowed.new_zeros(0)
        buffer = torch.cat([held, windowed.new_zeros(count * hop)])
        for i in range(count):
            buffer[i * hop : i * hop + head.n_fft] += windowed[:, i]
        ready = buffer[: count * hop] / steady_envelope(head.window, hop).repeat(count)
        if pending:
            new.append(buffer[count * hop :].view(1, 1, -1))
        return ready.view(1, 1, -1), new

    def flush(self, state: State) -> torch.Tensor:
        """The last :meth:`delay` samples ``[1, 1, delay]``: the held sums, faded out as offline (no frame follows)."""
        tail, pending = self.delay(), self._pending()
        held = state[-1][0, 0] if pending else self.embed.weight.new_zeros(0)
        out = F.pad(held, (0, max(0, tail - pending)))[:tail]
        return (out / steady_envelope(self.head.window, self.head.hop_length).repeat(tail // self.head.hop_length))[
            None, None
        ]


def _init_weights(module: nn.Module) -> None:
    """Vocos's init: truncated normal (std 0.02) weights, zero biases, for every conv and linear layer."""
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        assert module.bias is not None  # every conv and linear layer of the decoder has a bias
        nn.init.zeros_(module.bias)
