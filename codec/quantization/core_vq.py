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

Factorised lookup (``QuantizerConfig.codebook_dim > 0``, DAC after ViT-VQGAN): each level projects its
residual ``[N, D]`` to ``[N, d]`` with a learned linear map, L2-normalises it and picks the entry of highest
cosine similarity among L2-normalised entries; a second learned map takes the entry back to ``D``. A few
dimensions on the unit sphere are far easier to cover with K entries than D = 128 free ones (DAC reports
nearly full codebook use where plain lookup leaves most entries dead). Both rules above still hold in the
codebook space: the EMA accumulates the projected *residuals*, and the commitment loss
``mse(projected residual, entry.detach())`` reaches the encoder (through the projection) and never an entry.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from codec.config.quantizer import QuantizerConfig
from codec.quantization import distributed


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
    bitrate_kbps: ``n_q * log2(K) * frame_rate / 1000`` (a Python float: known on the host).
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


def _argmin_rows(distances: Tensor, columns_per_block: int = 32) -> Tensor:
    """Index of the smallest entry of each row of ``distances [N, K]`` -> ``[N]`` int64.

    Same result as ``distances.argmin(1)`` up to the choice among exact ties, 3-4x faster on CPU
    (other devices use argmin):
    torch's argmin over a row is not vectorised while ``amin`` is. Viewing each row as blocks of
    ``columns_per_block``, a vectorised ``amin`` across blocks leaves ``[N, columns_per_block]``;
    the argmin of that small matrix gives the column, and one strided column per row gives the block.
    """
    num_rows, size = distances.shape
    if distances.device.type != "cpu" or size % columns_per_block or size < 2 * columns_per_block:
        return distances.argmin(dim=1)
    blocks = distances.view(num_rows, size // columns_per_block, columns_per_block)
    column = blocks.amin(dim=1).argmin(dim=1)  # [N]
    candidates = torch.gather(blocks, 2, column.view(num_rows, 1, 1).expand(-1, blocks.shape[1], 1))
    return candidates.view(num_rows, -1).argmin(dim=1) * columns_per_block + column


def _random_rows(num_rows: int, count: int, device: torch.device) -> Tensor:
    """``count`` random row indices out of ``num_rows`` (global RNG): distinct when enough rows exist."""
    if num_rows >= count:
        return torch.randperm(num_rows, device=device)[:count]
    return torch.randint(num_rows, (count,), device=device)


class EuclideanCodebook(nn.Module):
    """One codebook of ``K`` entries of dimension ``D`` updated by exponential moving averages.

    With ``normalized`` the entries are L2-normalised when derived (the codebook of a factorised level,
    whose inputs are unit vectors): the nearest entry by Euclidean distance is then the one of highest
    cosine similarity, and the EMA mean of the assigned unit vectors gives the direction of their centre.

    Buffers (no parameters: the optimiser never touches the codebook):
        embedding_sum ``[K, D]``: EMA of the sum of the encoder residuals assigned to each entry.
        cluster_usage ``[K]``: EMA of the number of residual frames assigned to each entry.
        initialized ``[]`` bool: set once the entries were seeded (k-means or a first batch).

    The entries are always derived, ``embedding_sum / smoothed(cluster_usage)``, so writing the two
    buffers together is the only way to change an entry: nothing can drift out of sync.
    """

    def __init__(self, dim: int, codebook_size: int, *, decay: float, epsilon: float,
                 dead_code_threshold: float, normalized: bool = False):
        super().__init__()
        self.dim = dim
        self.normalized = normalized
        self.codebook_size = codebook_size
        self.decay = decay
        self.epsilon = epsilon
        self.dead_code_threshold = dead_code_threshold
        self.register_buffer("embedding_sum", torch.zeros(codebook_size, dim))
        self.register_buffer("cluster_usage", torch.ones(codebook_size))
        self.register_buffer("initialized", torch.tensor(False))
        # Host-side copy of `initialized` so the training step reads the device flag only once.
        self._known_initialized = False

    def extra_repr(self) -> str:
        return f"dim={self.dim}, codebook_size={self.codebook_size}, decay={self.decay}, normalized={self.normalized}"

    def _load_from_state_dict(self, *args, **kwargs):  # noqa: D401 - torch hook
        super()._load_from_state_dict(*args, **kwargs)
        self._known_initialized = False

    def is_initialized(self) -> bool:
        """Whether the entries were seeded (reads the buffer once, then a cached host copy)."""
        if not self._known_initialized:
            self._known_initialized = bool(self.initialized)
        return self._known_initialized

    def smoothed_usage(self, usage: Tensor | None = None) -> Tensor:
        """Laplace-smoothed usage ``[K]``: ``(u + eps) / (sum u + K eps) * sum u``.

        Keeps the division in :attr:`embedding` finite for entries no frame has picked for a while,
        while leaving the total mass unchanged.
        """
        usage = self.cluster_usage if usage is None else usage
        total = usage.sum()
        smoothed = (usage + self.epsilon) / (total + self.codebook_size * self.epsilon) * total
        return smoothed.clamp_min(self.epsilon)

    @property
    def embedding(self) -> Tensor:
        """The entries ``[K, D]``, derived from the EMA buffers (no gradient); unit vectors when ``normalized``."""
        embedding = self.embedding_sum / self.smoothed_usage()[:, None]
        return F.normalize(embedding, dim=1) if self.normalized else embedding

    def assign(self, vectors: Tensor, embedding: Tensor | None = None) -> Tensor:
        """Nearest entry of each row of ``vectors [N, D]`` -> codes ``[N]`` int64 (any one on exact ties).

        One matrix product: ``||e||^2 - 2 x.e``; ``||x||^2`` is the same for every entry of a row,
        so it cannot change the argmin and is left out.
        """
        embedding = self.embedding if embedding is None else embedding
        squared_norms = embedding.square().sum(dim=1)
        distances = torch.addmm(squared_norms, vectors, embedding.t(), alpha=-2.0)
        return _argmin_rows(distances)

    def lookup(self, codes: Tensor, embedding: Tensor | None = None) -> Tensor:
        """Codes ``[...]`` -> entries ``[..., D]``."""
        embedding = self.embedding if embedding is None else embedding
        return F.embedding(codes, embedding)

    @torch.no_grad()
    def set_codebook(self, vectors: Tensor, usage: Tensor | None = None) -> None:
        """Make the entries exactly ``vectors [K, D]`` with EMA usage ``usage [K]``.

        The default usage, ``1 - decay`` per entry, weighs each seed like one frame assigned one step
        ago: the first update moves a picked entry to about the mean of the seed and its frames, and
        an entry no frame picks falls under the dead threshold within tens of steps. A prior of one
        frame *per step* instead (usage 1) outweighs a real batch whenever it holds fewer frames than
        entries (200 frames for 1024 entries at batch 8 x 0.5 s): seeded entries then barely move and
        a codebook that collapses when the encoder starts moving needs hundreds of steps before its
        unused entries count as dead. ``embedding_sum`` is set to ``vectors * smoothed(usage)`` so
        that the derived embedding equals ``vectors``.
        """
        vectors = torch.as_tensor(vectors, dtype=self.embedding_sum.dtype, device=self.embedding_sum.device)
        if vectors.shape != self.embedding_sum.shape:
            raise ValueError(f"codebook: expected entries of shape {tuple(self.embedding_sum.shape)}, "
                             f"got {tuple(vectors.shape)}")
        if usage is None:
            usage = torch.full_like(self.cluster_usage, 1.0 - self.decay)
        usage = torch.as_tensor(usage, dtype=self.cluster_usage.dtype, device=self.cluster_usage.device)
        if usage.shape != self.cluster_usage.shape:
            raise ValueError(f"codebook: expected usage of shape {tuple(self.cluster_usage.shape)}, "
                             f"got {tuple(usage.shape)}")
        self.cluster_usage.copy_(usage)
        self.embedding_sum.copy_(vectors * self.smoothed_usage()[:, None])
        self.initialized.fill_(True)
        self._known_initialized = True

    @torch.no_grad()
    def initialize_from(self, samples: Tensor) -> None:
        """Seed the entries with K random rows of ``samples [N, D]`` unless already seeded.

        Random frames rather than an in-training k-means: they are cheap and lie on the data, and
        the dead-code replacement separates the duplicates drawn when ``N < K``. For better seeds,
        fit k-means offline (:mod:`codec.quantization.kmeans`) and call :meth:`set_codebook`.
        Rank 0's draw is broadcast so that every rank starts from the same codebook.
        """
        if self.is_initialized():
            return
        rows = _random_rows(samples.shape[0], self.codebook_size, samples.device)
        vectors = samples.detach()[rows].to(self.embedding_sum.dtype).contiguous()
        distributed.broadcast_(vectors, src=0)
        self.set_codebook(vectors)

    @torch.no_grad()
    def ema_update(self, counts: Tensor, sums: Tensor) -> None:
        """One EMA step from this step's assignment statistics (already summed over ranks).

        counts ``[K]``: number of residual frames assigned to each entry.
        sums ``[K, D]``: sum of the encoder residuals assigned to each entry (not their entries).
        """
        weight = 1.0 - self.decay
        self.cluster_usage.lerp_(counts, weight)
        self.embedding_sum.lerp_(sums, weight)

    def dead_mask(self) -> Tensor:
        """``[K]`` bool: EMA usage under ``dead_code_threshold`` times the mean usage.

        Relative to the mean (``total_usage / K``, the usage of a uniformly used codebook), so the
        rule does not depend on how many frames a batch holds.
        """
        return self.cluster_usage < self.dead_code_threshold * self.cluster_usage.mean()

    def ema_usage_fraction(self) -> Tensor:
        """Scalar: fraction of entries that are not dead by the EMA usage."""
        return (~self.dead_mask()).float().mean()

    @torch.no_grad()
    def replace_dead_codes(self, candidates: Tensor) -> Tensor:
        """Replace dead entries with ``candidates [M, D]`` (frames of the batch); returns how many.

        The i-th dead entry (in index order) takes candidate i, so at most M entries are replaced
        per step; the others wait for the next step. Only M rows are touched, chosen and masked on
        the device: no host sync. Both buffers are rewritten together (usage = the mean usage,
        sum = vector * smoothed usage): writing only the entry would be undone by the next update,
        which re-derives it from the stale sums. With the mean usage the new entry moves at the pace
        of an average entry and has ``log(1 / threshold) / (1 - decay)`` steps to be picked before
        it counts as dead again. Must run identically on every rank: the mask comes from the
        all-reduced usage, and the candidates from rank 0.
        """
        dead = self.dead_mask()
        # Stable sort puts the dead entries first, in index order; rows that turn out alive
        # (fewer than M dead) keep their values through `take`.
        rows = torch.argsort((~dead).to(torch.uint8), stable=True)[:candidates.shape[0]]
        take = dead[rows]
        usage = self.cluster_usage.clone()
        usage[rows] = torch.where(take, self.cluster_usage.mean(), usage[rows])
        new_sums = candidates[:rows.shape[0]] * self.smoothed_usage(usage)[rows, None]
        self.embedding_sum.index_copy_(0, rows, torch.where(take[:, None], new_sums, self.embedding_sum[rows]))
        self.cluster_usage.copy_(usage)
        return take.sum()


class LevelProjection(nn.Module):
    """The two learned maps of one factorised level: latent ``[N, D]`` <-> codebook space ``[N, d]``.

    Parameters: ``in_proj`` (D -> d) and ``out_proj`` (d -> D), weight-normalised linear layers (DAC's
    1x1 convolutions). The projected vectors are L2-normalised, so the codebook compares directions.
    """

    def __init__(self, dim: int, codebook_dim: int):
        super().__init__()
        self.in_proj = weight_norm(nn.Linear(dim, codebook_dim))
        self.out_proj = weight_norm(nn.Linear(codebook_dim, dim))

    def project(self, residual: Tensor) -> Tensor:
        """``[N, D]`` -> unit vectors ``[N, d]`` (differentiable)."""
        return F.normalize(self.in_proj(residual), dim=-1)

    def reconstruct(self, entries: Tensor, vectors: Tensor | None = None) -> Tensor:
        """Entries ``[N, d]`` -> ``[N, D]``: ``out_proj(entries)``.

        With ``vectors`` (the projected residuals the entries quantize) the gradient w.r.t. the input of
        ``out_proj`` goes straight through to them, as if ``out_proj`` had been applied to the vectors: the
        value is unchanged (``vectors - vectors.detach()`` is exactly zero), so the eval forward still
        equals ``decode(encode(x))`` bit for bit.
        """
        out = self.out_proj(entries)
        if vectors is not None:
            out = out + F.linear(vectors - vectors.detach(), self.out_proj.weight)
        return out


class _Cascade(NamedTuple):
    """Internal result of running the residual levels (frames layout ``[N, D]``)."""

    quantized_sum: Tensor  # [N, D]: no gradient (plain lookup), or through the projections (factorised)
    codes: list[Tensor]  # n_q x [N] int64
    inputs: list[Tensor]  # n_q x [N, d]: what each level's codebook saw (the residual, or its projection)
    commitment: Tensor  # [n_q]: mse(input_l, entry_l), differentiable w.r.t. the input only
    error: Tensor  # [n_q]: cumulative relative quantization error in the latent space


class ResidualVectorQuantizer(nn.Module):
    """Residual VQ: level ``l`` quantizes what the levels before it left, with its own EMA codebook.

    ``residual_0 = x``, ``q_l = nearest entry of residual_l``,
    ``residual_{l+1} = residual_l - q_l.detach()``; output ``sum_l q_l`` with a straight-through
    gradient to ``x``. Factorised (``config.codebook_dim = d > 0``): ``q_l = out_l(nearest unit entry of
    normalize(in_l(residual_l)))``, with the gradient straight through the lookup into ``in_l`` and the
    encoder, and into ``out_l`` (parameters ``projections.<l>``).

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
        self.codebooks = nn.ModuleList(
            EuclideanCodebook(self.codebook_dim, config.codebook_size, decay=config.decay, epsilon=config.epsilon,
                              dead_code_threshold=config.dead_code_threshold, normalized=factorised)
            for _ in range(config.num_levels)
        )
        self.projections = nn.ModuleList(LevelProjection(dim, self.codebook_dim) for _ in range(config.num_levels)) \
            if factorised else None
        # Threshold 0 disables replacement: then no candidate frames are gathered or reduced.
        self._max_replaced = min(config.dead_code_max_per_step, config.codebook_size) \
            if config.dead_code_threshold > 0 else 0
        self._dropout_generator = torch.Generator().manual_seed(seed)

    def bitrate_kbps(self, n_q: int | None = None) -> float:
        """kbit/s when ``n_q`` levels (all when None) are sent: ``n_q * log2(K) * frame_rate / 1000``."""
        n_q = self.num_levels if n_q is None else self._check_levels(n_q)
        return n_q * math.log2(self.codebook_size) * self.frame_rate / 1000.0

    # ----------------------------------------------------------------------------------- setup

    def set_codebook(self, level: int, centroids, usage=None) -> None:
        """Seed level ``level`` with ``centroids [K, D]`` (e.g. k-means); ``usage [K]`` defaults to ones."""
        self.codebooks[level].set_codebook(torch.as_tensor(centroids), usage)

    def load_centroids(self, centroids) -> None:
        """Seed the first ``L' <= num_levels`` levels from ``centroids [L', K, d]`` (array or tensor;
        ``d`` is the codebook dimension: D, or ``codebook_dim`` when factorised)."""
        centroids = torch.as_tensor(centroids)
        if centroids.dim() != 3 or centroids.shape[0] > self.num_levels:
            raise ValueError(f"expected centroids [<= {self.num_levels}, {self.codebook_size}, {self.codebook_dim}], "
                             f"got {tuple(centroids.shape)}")
        for level, level_centroids in enumerate(centroids):
            self.set_codebook(level, level_centroids)

    def project(self, level: int, residual: Tensor) -> Tensor:
        """What level ``level``'s codebook sees of ``residual [N, D]``: itself, or its unit projection ``[N, d]``."""
        return residual if self.projections is None else self.projections[level].project(residual)

    def reconstruct(self, level: int, entries: Tensor) -> Tensor:
        """Level ``level``'s entries ``[N, d]`` as latents ``[N, D]`` (the identity without factorisation)."""
        return entries if self.projections is None else self.projections[level].reconstruct(entries)

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
            # Same estimator as x + (q - x).detach(), without its rounding error. Factorised levels
            # carry their own straight-through path (through the projections) in the sum.
            quantized = cascade.quantized_sum
            if self.projections is None:
                quantized = quantized + (frames - frames.detach())
        stats = self._stats(counts, cascade.error, replaced, n_q)
        return QuantizerOutput(self._latents(quantized, shape), self._codes_tensor(cascade.codes, shape),
                               commitment, stats)

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
        quantized_sum = None
        for level in range(n_q):
            # Same order of additions as the forward, so the sums agree exactly.
            entry = self.reconstruct(level, self.codebooks[level].lookup(codes[:, level].reshape(-1)))
            quantized_sum = entry if quantized_sum is None else quantized_sum + entry
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
        quantized_sum = None
        codes, inputs, commitment, error = [], [], [], []
        for level, codebook in enumerate(self.codebooks[:n_q]):
            vectors = self.project(level, residual)
            if seed_codebooks:
                codebook.initialize_from(vectors)
            embedding = codebook.embedding
            level_codes = codebook.assign(vectors.detach(), embedding)
            entry = codebook.lookup(level_codes, embedding).detach()
            codes.append(level_codes)
            inputs.append(vectors)
            if self.projections is None:
                # The entry is a constant: the next level's input keeps the path to the encoder, and
                # its mean square is this level's commitment loss mse(residual, entry.detach()).
                quantized = entry
                residual = residual - entry
                commitment.append(residual.square().mean())
                error.append(commitment[-1].detach())
            else:
                quantized = self.projections[level].reconstruct(entry, vectors)
                commitment.append((vectors - entry).square().mean())
                residual = residual - quantized.detach()
                error.append(residual.detach().square().mean())
            quantized_sum = quantized if quantized_sum is None else quantized_sum + quantized
        energy = frames.detach().square().sum().clamp_min(torch.finfo(frames.dtype).tiny)
        return _Cascade(quantized_sum, codes, inputs, torch.stack(commitment),
                        torch.stack(error) * frames.numel() / energy)

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
        sums = packed[n_counts:n_counts + n_sums].view(n_q, size, dim)
        candidates = packed[n_counts + n_sums:].view(n_q, max_replaced, dim)
        ones = torch.ones(num_frames, device=device)
        is_source = distributed.rank() == 0
        for level, (level_codes, level_input) in enumerate(zip(cascade.codes, cascade.inputs)):
            residual = level_input.detach()
            counts[level].index_add_(0, level_codes, ones)
            # The encoder residuals, not the selected entries: averaging those would never move them.
            sums[level].index_add_(0, level_codes, residual)
            if max_replaced:
                rows = _random_rows(num_frames, max_replaced, device)  # every rank draws: RNG streams stay aligned
                if is_source:
                    torch.index_select(residual, 0, rows, out=candidates[level])
        distributed.all_reduce_sum_(packed)
        replaced = []
        for level in range(n_q):
            codebook = self.codebooks[level]
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
            ema_usage = torch.stack([codebook.ema_usage_fraction() for codebook in self.codebooks[:n_q]])
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
