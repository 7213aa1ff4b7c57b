"""DAC's factorised lookup (after ViT-VQGAN) as a codebook of the residual quantizer.

Each level projects its residual ``[N, D]`` to ``[N, d]`` with a learned linear map, L2-normalises it and picks
the entry of highest cosine similarity among L2-normalised entries; a second learned map takes the entry back
to ``D``. A few dimensions on the unit sphere are far easier to cover with K entries than D = 128 free ones
(DAC reports nearly full codebook use where plain lookup leaves most entries dead). Both rules of
:mod:`codec.quantization.core_vq` hold in the codebook space: the EMA accumulates the projected *residuals*,
and the commitment loss ``mse(projected residual, entry.detach())`` reaches the encoder (through the
projection) and never an entry.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from codec.quantization.codebook import EuclideanCodebook, LevelOutput


class FactorisedCodebook(EuclideanCodebook):
    """An EMA codebook of ``K`` unit entries of dimension ``d`` and the two learned maps of its level.

    Parameters: ``in_proj`` (D -> d) and ``out_proj`` (d -> D), weight-normalised linear layers (DAC's 1x1
    convolutions). Buffers: those of :class:`EuclideanCodebook`, in ``d`` dimensions. The entries are
    L2-normalised when derived: the nearest entry by Euclidean distance to a unit vector is then the one of
    highest cosine similarity, and the EMA mean of the assigned unit vectors gives the direction of their centre.
    """

    # The level's output goes through out_proj with a straight-through path of its own (see reconstruct).
    carries_gradient = True

    def __init__(self, dim: int, codebook_dim: int, codebook_size: int, **ema: float):
        """``dim``: the latent dimension D; ``codebook_dim``: d; ``ema``: :class:`EuclideanCodebook`'s settings
        (``decay``, ``epsilon``, ``dead_code_threshold``)."""
        super().__init__(codebook_dim, codebook_size, **ema)
        self.latent_dim = dim
        self.in_proj = weight_norm(nn.Linear(dim, codebook_dim))
        self.out_proj = weight_norm(nn.Linear(codebook_dim, dim))

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, " + super().extra_repr()

    @property
    def embedding(self) -> Tensor:
        """The unit entries ``[K, d]``, derived from the EMA buffers (no gradient)."""
        return F.normalize(super().embedding, dim=1)

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

    def quantize(self, residual: Tensor, *, seed: bool = False) -> LevelOutput:
        vectors = self.project(residual)
        if seed:
            self.initialize_from(vectors)
        embedding, squared_norms = self.entries()
        codes = self.assign(vectors.detach(), embedding, squared_norms)
        entry = self.lookup(codes, embedding).detach()
        quantized = self.reconstruct(entry, vectors)
        rest = residual - quantized.detach()
        return LevelOutput(
            codes, vectors, quantized, (vectors - entry).square().mean(), rest, rest.detach().square().mean()
        )

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[N]`` -> latents ``[N, D]``."""
        return self.reconstruct(self.lookup(codes, self.entries()[0]))
