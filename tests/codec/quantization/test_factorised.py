"""Factorised lookup (codebook_dim > 0): projections, cosine lookup, the two seed rules, dead codes, round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from codec.config.quantizer import QuantizerConfig
from codec.quantization.core_vq import ResidualVectorQuantizer
from codec.quantization.factorised import FactorisedCodebook


def make_quantizer(dim: int = 16, codebook_dim: int = 4, **overrides) -> ResidualVectorQuantizer:
    base = dict(
        num_levels=3, codebook_size=16, decay=0.9, dead_code_threshold=0.0, dropout=False, codebook_dim=codebook_dim
    )
    base.update(overrides)
    return ResidualVectorQuantizer(dim, QuantizerConfig(**base), 50.0, seed=0)


def as_frames(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).reshape(-1, x.shape[1])


def test_shapes_entries_on_the_unit_sphere_and_learned_projections():
    torch.manual_seed(0)
    quantizer = make_quantizer().train()
    x = torch.randn(2, 16, 30)
    out = quantizer(x)
    assert out.quantized.shape == x.shape and out.codes.shape == (2, 3, 30)
    for codebook in quantizer.codebooks:
        assert codebook.embedding_sum.shape == (16, 4) and isinstance(codebook, FactorisedCodebook)
        torch.testing.assert_close(codebook.embedding.norm(dim=1), torch.ones(16))
    names = {name for name, _ in quantizer.named_parameters()}
    assert any(n.startswith("codebooks.0.in_proj") for n in names)
    assert any(n.startswith("codebooks.2.out_proj") for n in names)
    assert all(not b.requires_grad for b in quantizer.buffers())


def test_cosine_lookup_picks_the_nearest_direction():
    torch.manual_seed(0)
    quantizer = make_quantizer(num_levels=1).train()
    quantizer(torch.randn(4, 16, 20))  # seeds the codebook from the batch
    quantizer.eval()
    x = torch.randn(2, 16, 25)
    codes = quantizer.encode(x)[:, 0].reshape(-1)
    projected = quantizer.project(0, as_frames(x))
    torch.testing.assert_close(projected.norm(dim=1), torch.ones(projected.shape[0]))
    entries = F.normalize(quantizer.codebooks[0].embedding_sum, dim=1)
    cosine = projected @ entries.T  # brute force: highest cosine similarity
    assert torch.equal(cosine.gather(1, codes[:, None]).squeeze(1), cosine.max(dim=1).values)


def test_commitment_loss_reaches_encoder_and_in_projection_never_the_codebook():
    torch.manual_seed(0)
    encoder = nn.Conv1d(4, 16, kernel_size=3, padding=1)
    quantizer = make_quantizer().train()
    quantizer(encoder(torch.randn(2, 4, 20)).detach())  # seed
    out = quantizer(encoder(torch.randn(2, 4, 20)))
    out.commitment_loss.backward()
    assert encoder.weight.grad.abs().sum() > 0
    in_grads = [p.grad for n, p in quantizer.named_parameters() if ".in_proj." in n]
    assert all(g is not None and g.abs().sum() > 0 for g in in_grads)
    out_grads = [p.grad for n, p in quantizer.named_parameters() if ".out_proj." in n]
    assert all(g is None or g.abs().sum() == 0 for g in out_grads)  # the commitment loss ignores out_proj
    assert all(b.grad is None for b in quantizer.buffers())


def test_decoder_gradient_goes_straight_through_the_lookup():
    torch.manual_seed(0)
    quantizer = make_quantizer(num_levels=1).train()
    x = torch.randn(2, 16, 10, requires_grad=True)
    quantizer(x.detach())
    out = quantizer(x)
    upstream = torch.randn_like(out.quantized)
    out.quantized.backward(upstream)
    # d quantized / d x = W_out . d(normalize(W_in x)) / dx: the gradient of out_proj(project(x)).
    frames = as_frames(x.detach()).requires_grad_()
    projection = quantizer.codebooks[0]
    expected_out = F.linear(projection.project(frames), projection.out_proj.weight)
    (expected,) = torch.autograd.grad(expected_out, frames, as_frames(upstream))
    torch.testing.assert_close(as_frames(x.grad), expected, atol=1e-5, rtol=1e-4)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in projection.out_proj.parameters())


def test_ema_moves_entries_toward_the_assigned_projected_residuals():
    torch.manual_seed(0)
    quantizer = make_quantizer(dim=16, codebook_dim=2, num_levels=1, codebook_size=4, decay=0.7).train()
    # Entries at the four diagonals of the unit circle; frames whose projections lie near angle 20 deg.
    diagonals = F.normalize(torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]), dim=1)
    quantizer.codebooks[0].set_codebook(diagonals)
    projection = quantizer.codebooks[0]
    target = torch.tensor([torch.cos(torch.tensor(0.35)), torch.sin(torch.tensor(0.35))])
    # Latents whose in_proj image points at `target` (pseudo-inverse of the projection's weight).
    weight = projection.in_proj.weight.detach()
    base = torch.linalg.pinv(weight) @ (target - projection.in_proj.bias.detach())
    x = (base[None] + 0.01 * torch.randn(40, 16) @ (torch.eye(16) - torch.linalg.pinv(weight) @ weight)).T[None]
    before = quantizer.codebooks[0].embedding[0].clone()
    for _ in range(30):
        out = quantizer(x)
        assert (out.codes == 0).all()  # the premise: every frame picks entry 0 (45 deg)
    after = quantizer.codebooks[0].embedding[0]
    assert torch.dot(after, target) > torch.dot(before, target) + 0.05
    torch.testing.assert_close(after, target, atol=2e-3, rtol=0)
    # Entries nothing picked stay where they were.
    torch.testing.assert_close(quantizer.codebooks[0].embedding[1:], diagonals[1:])


def test_eval_forward_equals_decode_of_encode_exactly():
    torch.manual_seed(0)
    quantizer = make_quantizer().train()
    for _ in range(3):
        quantizer(torch.randn(2, 16, 30))
    quantizer.eval()
    x = torch.randn(2, 16, 17)
    out = quantizer(x)
    for n_q in (1, 2, 3):
        assert torch.equal(quantizer.decode(quantizer.encode(x, n_q)), quantizer(x, n_q).quantized)
    assert torch.equal(quantizer.decode(out.codes), out.quantized)


def test_quantization_error_falls_with_levels_and_is_measured_in_latent_space():
    torch.manual_seed(0)
    quantizer = make_quantizer(codebook_size=64, num_levels=3).train()
    x = torch.randn(4, 16, 64)
    for _ in range(5):
        quantizer(x)
    quantizer.eval()
    out = quantizer(x)
    frames = as_frames(x)
    recon = as_frames(out.quantized)
    error = out.stats.quantization_error
    torch.testing.assert_close(error[-1], (frames - recon).square().sum() / frames.square().sum(), rtol=1e-4, atol=0)
    assert error.shape == (3,)


def test_dead_codes_are_replaced_by_projected_frames():
    torch.manual_seed(0)
    quantizer = make_quantizer(num_levels=1, codebook_size=8, dead_code_threshold=0.5).train()
    x = (torch.randn(16, 1) + 0.05 * torch.randn(16, 40))[None]  # frames around one latent: one direction
    projected = quantizer.project(0, as_frames(x)).detach()
    codebook = quantizer.codebooks[0]
    away = F.normalize(torch.randn(7, 4), dim=1)
    away = torch.where((away @ projected.mean(0)).unsqueeze(1) > 0, -away, away)  # pointing away from the frames
    codebook.set_codebook(torch.cat([F.normalize(projected.mean(0), dim=0)[None], away]))
    out = quantizer(x)
    assert (out.codes == 0).all() and int(out.stats.dead_codes_replaced[0]) == 7
    for entry in codebook.embedding[1:]:  # each replaced entry is one of the batch's projected frames
        assert (projected - entry).norm(dim=1).min() < 1e-4


def test_config_rejects_a_negative_codebook_dim():
    with pytest.raises(ValueError, match="codebook_dim"):
        QuantizerConfig(codebook_dim=-1)
