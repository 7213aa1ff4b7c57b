"""Residual vector quantizer with EMA codebooks: the codec's bottleneck.

Shapes: latents are ``[B, D, T]`` (batch, latent dim, frames); internally they are flattened to
``N = B * T`` frames of dimension ``D``. Codes are ``[B, n_q, T]`` int64 indices in ``[0, K)``.

Two rules keep the codec trainable (an earlier version broke both and never learnt):

* The commitment loss is ``mse(residual, quantized.detach())``: its gradient reaches the encoder
  through the residual, never the codebook (the codebook holds only buffers anyway).
* The EMA accumulates the *encoder residuals* assigned to each entry (count and sum), and the
  entry is derived as their mean. Averaging the quantized outputs instead would feed each entry
  its own value back, and the codebook would never move.

The design follows the EMA codebooks of audiocraft and moshi: buffers ``embedding_sum [K, D]``
and ``cluster_usage [K]``, with the embedding derived from them using Laplace smoothing.

Each level is a codebook behind one interface (``quantize`` a residual, ``decode`` codes, ``project`` and
``reconstruct`` between the latent and the codebook space): :class:`EuclideanCodebook` here (plain lookup
in the latent space), :class:`codec.quantization.factorised.FactorisedCodebook` for DAC's factorised
lookup (``QuantizerConfig.codebook_dim > 0``), which keeps both rules in its own codebook space.
"""

from __future__ import annotations

import math
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn

from codec.config.quantizer import QuantizerConfig, raw_kbps
from codec.quantization import distributed
from codec.quantization.codebook import EuclideanCodebook, LevelOutput, random_rows
from codec.quantization.factorised import FactorisedCodebook


class QuantizerStats(NamedTuple):
    """Diagnostics of one forward, for the ``n_q`` levels used. Tensors stay on the input's device
    (reading them is the caller's choice of when to sync); per-level tensors have shape ``[n_q]``.

    perplexity: ``exp(entropy)`` of the code histogram of this batch (all ranks when training
        distributed), in entries; K means perfectly uniform use.
    entropy: that entropy divided by ``log K``, in [0, 1].
    batch_usage: fraction of entries picked at least once in this batch (capped by N / K).
    ema_usage: fraction of entries whose EMA usage is at or above the dead-code threshold: usage
        over the last ~1 / (1 - decay) batches, so not capped by the batch size.
    quantization_error: ``||x - sum of levels <= l||^2 / ||x||^2``, cumulative over levels.
    dead_codes_replaced: entries replaced by batch frames at this step (int64; zeros in eval).
    bitrate_kbps: ``n_q * code_bits(K) * frame_rate / 1000`` (a Python float: known on the host).
    n_q: number of levels used.
    """

    perplexity: Tensor
    entropy: Tensor
    batch_usage: Tensor
    ema_usage: Tensor
    quantization_error: Tensor
    dead_codes_replaced: Tensor
    bitrate_kbps: float
    n_q: int

    def summary(self, prefix: str = "vq/", per_level: bool = True) -> dict[str, float]:
        """Flat ``{name: float}`` for logging: each figure's mean over levels (``<prefix><name>_mean``) and, with
        ``per_level``, each level's (``<prefix><name>/<level>``). Reads the tensors: a host sync, so call it
        when logging."""
        out = {f"{prefix}bitrate_kbps": self.bitrate_kbps, f"{prefix}n_q": float(self.n_q)}
        for name in ("perplexity", "entropy", "batch_usage", "ema_usage", "quantization_error", "dead_codes_replaced"):
            values = getattr(self, name).detach().float().cpu().tolist()
            out[f"{prefix}{name}_mean"] = sum(values) / len(values)
            if per_level:
                out.update({f"{prefix}{name}/{level}": v for level, v in enumerate(values)})
        return out


class QuantizerOutput(NamedTuple):
    """Result of :meth:`ResidualVectorQuantizer.forward`.

    quantized: ``[B, D, T]`` float32, the sum of the selected entries; gradients pass straight
        through to the input.
    codes: ``[B, n_q, T]`` int64.
    commitment_loss: scalar, mean over levels of ``mse(residual, entry)``, times commitment_weight.
    stats: :class:`QuantizerStats`.
    """

    quantized: Tensor
    codes: Tensor
    commitment_loss: Tensor
    stats: QuantizerStats


class _Cascade(NamedTuple):
    """Internal result of running the residual levels (frames layout ``[N, D]``)."""

    quantized_sum: Tensor  # [N, D]: the gradient path its codebooks give it (none for plain lookup)
    codes: list[Tensor]  # n_q x [N] int64
    inputs: list[Tensor]  # n_q x [N, d]: what each level's codebook saw (LevelOutput.inputs)
    commitment: Tensor  # [n_q]: mse(input_l, entry_l), differentiable w.r.t. the input only
    error: Tensor  # [n_q]: cumulative relative quantization error in the latent space


class ResidualVectorQuantizer(nn.Module):
    """Residual VQ: level ``l`` quantizes what the levels before it left, with its own EMA codebook.

    ``residual_0 = x``, ``q_l = nearest entry of residual_l``,
    ``residual_{l+1} = residual_l - q_l.detach()``; output ``sum_l q_l`` with a straight-through
    gradient to ``x``. Each level is an :class:`EuclideanCodebook`, or with ``config.codebook_dim = d > 0`` a
    :class:`~codec.quantization.factorised.FactorisedCodebook` (``q_l = out_l(nearest unit entry of
    normalize(in_l(residual_l)))``, whose output carries the gradient itself, through its projections).

    Args:
        dim: latent dimension D.
        config: :class:`QuantizerConfig`.
        frame_rate: latent frames per second (for the bitrate).
        seed: seeds the quantizer-dropout draws; must be the same on every rank so that all ranks
            use the same number of levels at each step. The draws restart from it when a run is
            resumed (the generator is not part of the state dict).

    Training (``self.training``) updates the codebooks at every forward: seeding unseeded levels
    from the first batch, EMA of counts and residual sums (one all-reduce per step when
    distributed), and dead-code replacement. Random frame picks use torch's global RNG on the
    input's device, so ``torch.manual_seed`` makes CPU runs reproducible.
    """

    def __init__(self, dim: int, config: QuantizerConfig, frame_rate: float, *, seed: int = 0):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if frame_rate <= 0:
            raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
        self.dim = dim
        self.config = config
        self.frame_rate = float(frame_rate)
        self.num_levels = config.num_levels
        self.codebook_size = config.codebook_size
        factorised = config.codebook_dim > 0
        self.codebook_dim = config.codebook_dim if factorised else dim
        ema = dict(decay=config.decay, epsilon=config.epsilon, dead_code_threshold=config.dead_code_threshold)
        self.codebooks = nn.ModuleList(
            FactorisedCodebook(dim, config.codebook_dim, config.codebook_size, **ema)
            if factorised
            else EuclideanCodebook(dim, config.codebook_size, **ema)
            for _ in range(config.num_levels)
        )
        # Threshold 0 disables replacement: then no candidate frames are gathered or reduced.
        self._max_replaced = (
            min(config.dead_code_max_per_step, config.codebook_size) if config.dead_code_threshold > 0 else 0
        )
        self._dropout_generator = torch.Generator().manual_seed(seed)

    def bitrate_kbps(self, n_q: int | None = None) -> float:
        """Nominal kbit/s when ``n_q`` levels (all when None) are sent: ``n_q * code_bits(K) * frame_rate / 1000``,
        what their raw codes take (the ``.tcq`` raw payload, the live code stream)."""
        n_q = self.num_levels if n_q is None else self._check_levels(n_q)
        return raw_kbps(n_q, self.codebook_size, self.frame_rate)

    # ----------------------------------------------------------------------------------- setup

    def codebook(self, level: int) -> EuclideanCodebook:
        """Level ``level``'s codebook (a :class:`FactorisedCodebook` when factorised)."""
        return cast(EuclideanCodebook, self.codebooks[level])

    def levels(self, n_q: int | None = None) -> list[EuclideanCodebook]:
        """The codebooks of the first ``n_q`` levels (all when None), in cascade order."""
        return [self.codebook(level) for level in range(self.num_levels if n_q is None else n_q)]

    @property
    def factorised(self) -> bool:
        """Whether the levels look entries up in a projected space (``config.codebook_dim > 0``)."""
        return isinstance(self.codebooks[0], FactorisedCodebook)

    def set_codebook(self, level: int, centroids, usage=None) -> None:
        """Seed level ``level`` with ``centroids [K, d]`` (e.g. k-means); ``usage [K]`` defaults to ``1 - decay``
        per entry (see :meth:`EuclideanCodebook.set_codebook`)."""
        self.codebook(level).set_codebook(torch.as_tensor(centroids), usage)

    def load_centroids(self, centroids) -> None:
        """Seed the first ``L' <= num_levels`` levels from ``centroids [L', K, d]`` (array or tensor;
        ``d`` is the codebook dimension: D, or ``codebook_dim`` when factorised)."""
        centroids = torch.as_tensor(centroids)
        if centroids.dim() != 3 or centroids.shape[0] > self.num_levels:
            raise ValueError(
                f"expected centroids [<= {self.num_levels}, {self.codebook_size}, {self.codebook_dim}], "
                f"got {tuple(centroids.shape)}"
            )
        for level, level_centroids in enumerate(centroids):
            self.set_codebook(level, level_centroids)

    def project(self, level: int, residual: Tensor) -> Tensor:
        """What level ``level``'s codebook sees of ``residual [N, D]``: itself, or its unit projection ``[N, d]``."""
        return self.codebook(level).project(residual)

    def reconstruct(self, level: int, entries: Tensor) -> Tensor:
        """Level ``level``'s entries ``[N, d]`` as latents ``[N, D]`` (the identity without factorisation)."""
        return self.codebook(level).reconstruct(entries)

    # ------------------------------------------------------------------------------- interface

    def forward(self, x: Tensor, n_q: int | None = None) -> QuantizerOutput:
        """Quantize ``x [B, D, T]`` with ``n_q`` levels.

        ``n_q=None``: all levels, or in training with ``config.dropout``, on a share
        ``dropout_probability`` of the steps, a number drawn uniformly in
        ``[dropout_min_levels, num_levels]``. In training mode the codebooks are updated.
        No host-device sync happens here once the codebooks are seeded.
        """
        frames, shape = self._frames(x)
        n_q = self._levels_for_step(n_q)
        with torch.autocast(device_type=frames.device.type, enabled=False):
            cascade = self._cascade(frames, n_q, seed_codebooks=self.training)
            commitment = cascade.commitment.mean() * self.config.commitment_weight
            if self.training:
                counts, replaced = self._update_codebooks(cascade)
            else:
                counts, replaced = self._code_counts(cascade.codes), frames.new_zeros(n_q, dtype=torch.long)
            # Straight-through estimator: the value is exactly the quantized sum (so eval output
            # equals decode(encode(x)) bit for bit), the gradient w.r.t. x is the identity.
            # Same estimator as x + (q - x).detach(), without its rounding error. Codebooks whose output
            # carries the gradient (factorised) bring their own straight-through path in the sum.
            quantized = cascade.quantized_sum
            if not self.codebooks[0].carries_gradient:
                quantized = quantized + (frames - frames.detach())
        stats = self._stats(counts, cascade.error, replaced, n_q)
        return QuantizerOutput(
            self._latents(quantized, shape), self._codes_tensor(cascade.codes, shape), commitment, stats
        )

    @torch.no_grad()
    def encode(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """``x [B, D, T]`` -> codes ``[B, n_q, T]`` int64 (all levels when None). Never updates."""
        frames, shape = self._frames(x)
        n_q = self.num_levels if n_q is None else self._check_levels(n_q)
        with torch.autocast(device_type=frames.device.type, enabled=False):
            cascade = self._cascade(frames, n_q, seed_codebooks=False)
        return self._codes_tensor(cascade.codes, shape)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, n_q, T]`` (values in ``[0, K)``) -> latents ``[B, D, T]`` float32."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.num_levels:
            raise ValueError(f"expected codes [B, 1..{self.num_levels}, T], got {tuple(codes.shape)}")
        batch, n_q, length = codes.shape
        # Same order of additions as the forward, so the sums agree exactly.
        quantized_sum = self.codebook(0).decode(codes[:, 0].reshape(-1))
        for level in range(1, n_q):
            quantized_sum = quantized_sum + self.codebook(level).decode(codes[:, level].reshape(-1))
        return self._latents(quantized_sum, (batch, self.dim, length))

    # -------------------------------------------------------------------------------- internals

    def _check_levels(self, n_q: int) -> int:
        if not 1 <= n_q <= self.num_levels:
            raise ValueError(f"n_q must be in [1, {self.num_levels}], got {n_q}")
        return int(n_q)

    def _levels_for_step(self, n_q: int | None) -> int:
        if n_q is not None:
            return self._check_levels(n_q)
        if self.training and self.config.dropout:
            # CPU generator: the draws need no device sync, and equal seeds give equal draws on all ranks.
            # Both are drawn at every step, so the sequence does not depend on the probability's outcomes.
            drop = float(torch.rand((), generator=self._dropout_generator)) < self.config.dropout_probability
            low = self.config.dropout_min_levels
            drawn = int(torch.randint(low, self.num_levels + 1, (1,), generator=self._dropout_generator))
            return drawn if drop else self.num_levels
        return self.num_levels

    def _frames(self, x: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
        """``[B, D, T]`` -> float32 frames ``[B * T, D]`` (row b * T + t)."""
        if x.dim() != 3 or x.shape[1] != self.dim:
            raise ValueError(f"expected latents of shape [B, {self.dim}, T], got {tuple(x.shape)}")
        batch, dim, length = x.shape
        if batch * length == 0:
            raise ValueError(f"empty latents of shape {tuple(x.shape)}")
        return x.float().transpose(1, 2).reshape(batch * length, dim), (batch, dim, length)

    @staticmethod
    def _latents(frames: Tensor, shape: tuple[int, int, int]) -> Tensor:
        batch, dim, length = shape
        return frames.view(batch, length, dim).transpose(1, 2).contiguous()

    @staticmethod
    def _codes_tensor(codes: list[Tensor], shape: tuple[int, int, int]) -> Tensor:
        batch, _, length = shape
        return torch.stack(codes).view(len(codes), batch, length).transpose(0, 1).contiguous()

    def _cascade(self, frames: Tensor, n_q: int, *, seed_codebooks: bool) -> _Cascade:
        residual = frames
        quantized_sum: Tensor | None = None
        codes, inputs, commitment, error = [], [], [], []
        for codebook in self.levels(n_q):
            level: LevelOutput = codebook.quantize(residual, seed=seed_codebooks)
            codes.append(level.codes)
            inputs.append(level.inputs)
            commitment.append(level.commitment)
            error.append(level.error)
            residual = level.residual
            quantized_sum = level.quantized if quantized_sum is None else quantized_sum + level.quantized
        assert quantized_sum is not None  # n_q >= 1
        energy = frames.detach().square().sum().clamp_min(torch.finfo(frames.dtype).tiny)
        return _Cascade(
            quantized_sum, codes, inputs, torch.stack(commitment), torch.stack(error) * frames.numel() / energy
        )

    def _code_counts(self, codes: list[Tensor]) -> Tensor:
        """``[n_q, K]`` float histogram of the codes; one scatter, no sync (unlike bincount on GPU)."""
        n_q, size = len(codes), self.codebook_size
        stacked = torch.stack(codes)
        offsets = torch.arange(n_q, device=stacked.device)[:, None] * size
        counts = torch.zeros(n_q * size, device=stacked.device)
        counts.index_add_(0, (stacked + offsets).reshape(-1), torch.ones(stacked.numel(), device=stacked.device))
        return counts.view(n_q, size)

    @torch.no_grad()
    def _update_codebooks(self, cascade: _Cascade) -> tuple[Tensor, Tensor]:
        """EMA update and dead-code replacement of the levels used; returns (counts [n_q, K], replaced [n_q]).

        Counts, residual sums and rank 0's replacement candidates go into one flat buffer: a single
        all-reduce per step sums the statistics over ranks and, since the other ranks contribute
        zeros there, broadcasts rank 0's candidates at the same time.
        """
        n_q, size, dim, max_replaced = len(cascade.codes), self.codebook_size, self.codebook_dim, self._max_replaced
        num_frames = cascade.codes[0].shape[0]
        device = cascade.quantized_sum.device
        n_counts, n_sums = n_q * size, n_q * size * dim
        packed = torch.zeros(n_counts + n_sums + n_q * max_replaced * dim, device=device)
        counts = packed[:n_counts].view(n_q, size)
        sums = packed[n_counts : n_counts + n_sums].view(n_q, size, dim)
        candidates = packed[n_counts + n_sums :].view(n_q, max_replaced, dim)
        ones = torch.ones(num_frames, device=device)
        is_source = distributed.rank() == 0
        for level, (level_codes, level_input) in enumerate(zip(cascade.codes, cascade.inputs)):
            residual = level_input.detach()
            counts[level].index_add_(0, level_codes, ones)
            # The encoder residuals, not the selected entries: averaging those would never move them.
            sums[level].index_add_(0, level_codes, residual)
            if max_replaced:
                rows = random_rows(num_frames, max_replaced, device)  # every rank draws: RNG streams stay aligned
                if is_source:
                    torch.index_select(residual, 0, rows, out=candidates[level])
        distributed.all_reduce_sum_(packed)
        replaced = []
        for level in range(n_q):
            codebook = self.codebook(level)
            codebook.ema_update(counts[level], sums[level])
            if max_replaced:
                replaced.append(codebook.replace_dead_codes(candidates[level]))
            else:
                replaced.append(torch.zeros((), dtype=torch.long, device=device))
        return counts, torch.stack(replaced)

    def _stats(self, counts: Tensor, error: Tensor, replaced: Tensor, n_q: int) -> QuantizerStats:
        with torch.no_grad():
            probs = counts / counts.sum(dim=1, keepdim=True).clamp_min(1.0)
            entropy = -torch.special.xlogy(probs, probs).sum(dim=1)
            ema_usage = torch.stack([codebook.ema_usage_fraction() for codebook in self.levels(n_q)])
            return QuantizerStats(
                perplexity=entropy.exp(),
                entropy=entropy / math.log(self.codebook_size),
                batch_usage=(counts > 0).float().mean(dim=1),
                ema_usage=ema_usage,
                quantization_error=error,
                dead_codes_replaced=replaced,
                bitrate_kbps=self.bitrate_kbps(n_q),
                n_q=n_q,
            )
