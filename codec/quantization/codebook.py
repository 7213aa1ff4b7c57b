"""One EMA codebook, and the interface every level of the residual quantizer offers.

Shapes: frames ``[N, D]`` (``N = B * T`` latent frames of dimension ``D``), codes ``[N]`` int64 in ``[0, K)``.
The entries live in two buffers, ``embedding_sum [K, D]`` and ``cluster_usage [K]`` (audiocraft's and
moshi's EMA codebooks), and are derived from them with Laplace smoothing; the EMA accumulates the encoder
*residuals* assigned to each entry, never the entries themselves (see :mod:`codec.quantization.core_vq`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codec.quantization import distributed


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


def random_rows(num_rows: int, count: int, device: torch.device) -> Tensor:
    """``count`` random row indices out of ``num_rows`` (global RNG): distinct when enough rows exist."""
    if num_rows >= count:
        return torch.randperm(num_rows, device=device)[:count]
    return torch.randint(num_rows, (count,), device=device)


class LevelOutput(NamedTuple):
    """What one level of the cascade did to a residual ``[N, D]`` (``d``: the codebook space's dimension).

    codes: ``[N]`` int64, the entry picked for each frame.
    inputs: ``[N, d]``, what the codebook saw (the EMA averages these): the residual, or its projection.
    quantized: ``[N, D]``, the level's contribution to the output (no gradient unless the codebook
        class says ``carries_gradient``).
    commitment: scalar, ``mse(inputs, entries.detach())``: reaches the encoder, never an entry.
    residual: ``[N, D]``, what is left for the next level.
    error: scalar, the mean square of what is left (no gradient).
    """

    codes: Tensor
    inputs: Tensor
    quantized: Tensor
    commitment: Tensor
    residual: Tensor
    error: Tensor


class EuclideanCodebook(nn.Module):
    """One codebook of ``K`` entries of dimension ``D`` updated by exponential moving averages; as a level of
    the cascade it quantizes the residual itself (plain lookup in the latent space).

    Buffers (no parameters: the optimiser never touches the codebook):
        embedding_sum ``[K, D]``: EMA of the sum of the encoder residuals assigned to each entry.
        cluster_usage ``[K]``: EMA of the number of residual frames assigned to each entry.
        initialized ``[]`` bool: set once the entries were seeded (k-means or a first batch).

    The entries are always derived, ``embedding_sum / smoothed(cluster_usage)``, so writing the two
    buffers together is the only way to change an entry: nothing can drift out of sync.
    """

    # The quantized output of a plain level is the entry itself, a constant: the quantizer passes the
    # gradient straight through the sum of the levels instead (see ResidualVectorQuantizer.forward).
    carries_gradient = False
    embedding_sum: Tensor
    cluster_usage: Tensor
    initialized: Tensor

    def __init__(self, dim: int, codebook_size: int, *, decay: float, epsilon: float, dead_code_threshold: float):
        super().__init__()
        self.dim = dim
        self.codebook_size = codebook_size
        self.decay = decay
        self.epsilon = epsilon
        self.dead_code_threshold = dead_code_threshold
        self.register_buffer("embedding_sum", torch.zeros(codebook_size, dim))
        self.register_buffer("cluster_usage", torch.ones(codebook_size))
        self.register_buffer("initialized", torch.tensor(False))
        # Host-side copy of `initialized` so the training step reads the device flag only once.
        self._known_initialized = False
        self._entries: tuple[tuple, Tensor, Tensor] | None = None  # see entries()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, codebook_size={self.codebook_size}, decay={self.decay}"

    def _load_from_state_dict(self, *args, **kwargs):
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
        """The entries ``[K, D]``, derived from the EMA buffers (no gradient)."""
        return self.embedding_sum / self.smoothed_usage()[:, None]

    def entries(self) -> tuple[Tensor, Tensor]:
        """``(embedding [K, D], squared norms [K])``. Outside training they are derived once per state of the
        buffers and kept (an in-place update, a load or a move changes the state): inference reads the same
        entries at every call, and a streaming chunk of a few frames would spend most of its time deriving them."""
        if self.training:
            embedding = self.embedding
            return embedding, embedding.square().sum(dim=1)
        key = (
            self.embedding_sum._version,
            self.cluster_usage._version,
            self.embedding_sum.data_ptr(),
            self.cluster_usage.data_ptr(),
            torch.is_inference_mode_enabled(),
        )
        if self._entries is None or self._entries[0] != key:
            embedding = self.embedding
            self._entries = (key, embedding, embedding.square().sum(dim=1))
        return self._entries[1], self._entries[2]

    def assign(self, vectors: Tensor, embedding: Tensor | None = None, squared_norms: Tensor | None = None) -> Tensor:
        """Nearest entry of each row of ``vectors [N, D]`` -> codes ``[N]`` int64 (any one on exact ties).

        One matrix product: ``||e||^2 - 2 x.e``; ``||x||^2`` is the same for every entry of a row,
        so it cannot change the argmin and is left out.
        """
        embedding = self.embedding if embedding is None else embedding
        squared_norms = embedding.square().sum(dim=1) if squared_norms is None else squared_norms
        distances = torch.addmm(squared_norms, vectors, embedding.t(), alpha=-2.0)
        return _argmin_rows(distances)

    def lookup(self, codes: Tensor, embedding: Tensor | None = None) -> Tensor:
        """Codes ``[...]`` -> entries ``[..., D]``."""
        embedding = self.embedding if embedding is None else embedding
        return F.embedding(codes, embedding)

    def project(self, residual: Tensor) -> Tensor:
        """What the codebook sees of a residual ``[N, D]``: the residual itself."""
        return residual

    def reconstruct(self, entries: Tensor, vectors: Tensor | None = None) -> Tensor:
        """Entries ``[N, D]`` as latents: themselves."""
        return entries

    def quantize(self, residual: Tensor, *, seed: bool = False) -> LevelOutput:
        """One level of the cascade on ``residual [N, D]`` (float32); ``seed`` seeds an unseeded codebook
        from these frames first (training)."""
        if seed:
            self.initialize_from(residual)
        embedding, squared_norms = self.entries()
        codes = self.assign(residual.detach(), embedding, squared_norms)
        entry = self.lookup(codes, embedding).detach()
        # The entry is a constant: the next level's input keeps the path to the encoder, and its mean
        # square is this level's commitment loss mse(residual, entry.detach()).
        rest = residual - entry
        commitment = rest.square().mean()
        return LevelOutput(codes, residual, entry, commitment, rest, commitment.detach())

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[N]`` -> latents ``[N, D]``."""
        return self.lookup(codes, self.entries()[0])

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
            raise ValueError(
                f"codebook: expected entries of shape {tuple(self.embedding_sum.shape)}, got {tuple(vectors.shape)}"
            )
        if usage is None:
            usage = torch.full_like(self.cluster_usage, 1.0 - self.decay)
        usage = torch.as_tensor(usage, dtype=self.cluster_usage.dtype, device=self.cluster_usage.device)
        if usage.shape != self.cluster_usage.shape:
            raise ValueError(
                f"codebook: expected usage of shape {tuple(self.cluster_usage.shape)}, got {tuple(usage.shape)}"
            )
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
        rows = random_rows(samples.shape[0], self.codebook_size, samples.device)
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
        rows = torch.argsort((~dead).to(torch.uint8), stable=True)[: candidates.shape[0]]
        take = dead[rows]
        usage = self.cluster_usage.clone()
        usage[rows] = torch.where(take, self.cluster_usage.mean(), usage[rows])
        new_sums = candidates[: rows.shape[0]] * self.smoothed_usage(usage)[rows, None]
        self.embedding_sum.index_copy_(0, rows, torch.where(take[:, None], new_sums, self.embedding_sum[rows]))
        self.cluster_usage.copy_(usage)
        return take.sum()
