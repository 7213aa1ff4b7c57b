"""Behaviour of the EMA residual VQ: gradients, EMA targets, dead codes, dropout, round trip."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from codec.config.convert import ConfigError, from_dict
from codec.config.quantizer import QuantizerConfig
from codec.quantization.core_vq import ResidualVectorQuantizer


def make_quantizer(dim: int = 8, frame_rate: float = 50.0, seed: int = 0, **overrides) -> ResidualVectorQuantizer:
    base = dict(num_levels=3, codebook_size=16, decay=0.9, dead_code_threshold=0.0, dropout=False)
    base.update(overrides)
    return ResidualVectorQuantizer(dim, QuantizerConfig(**base), frame_rate, seed=seed)


def clustered_latents(
    centers: torch.Tensor, batch: int, length: int, noise: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``[batch, D, length]`` frames drawn around ``centers [C, D]``."""
    picks = torch.randint(centers.shape[0], (batch * length,), generator=generator)
    frames = centers[picks] + noise * torch.randn(batch * length, centers.shape[1], generator=generator)
    return frames.view(batch, length, -1).transpose(1, 2)


def as_frames(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).reshape(-1, x.shape[1])


# ------------------------------------------------------------------------------ gradients


def test_commitment_loss_trains_the_encoder_never_the_codebook():
    torch.manual_seed(0)
    encoder = nn.Conv1d(4, 8, kernel_size=3, padding=1)
    quantizer = make_quantizer().train()
    out = quantizer(encoder(torch.randn(2, 4, 20)))
    out.commitment_loss.backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0
    assert encoder.bias.grad.abs().sum() > 0
    assert list(quantizer.parameters()) == []
    for name, buffer in quantizer.named_buffers():
        assert not buffer.requires_grad and buffer.grad is None, name


def test_commitment_loss_is_weighted_mean_of_level_errors():
    torch.manual_seed(0)
    quantizer = make_quantizer(commitment_weight=2.5).train()
    z = torch.randn(2, 8, 30)
    quantizer(z)  # seeds the codebooks
    quantizer.eval()
    out = quantizer(z)
    residual, expected = as_frames(z), []
    for level in range(quantizer.num_levels):
        entries = quantizer.codebooks[level].lookup(out.codes[:, level].reshape(-1))
        expected.append((residual - entries).square().mean())
        residual = residual - entries
    torch.testing.assert_close(out.commitment_loss, 2.5 * torch.stack(expected).mean())


def test_straight_through_gradient_is_identity():
    torch.manual_seed(0)
    quantizer = make_quantizer().train()
    x = torch.randn(3, 8, 10, requires_grad=True)
    out = quantizer(x)
    upstream = torch.randn_like(out.quantized)
    out.quantized.backward(upstream)
    assert torch.equal(x.grad, upstream)


# ------------------------------------------------------------------------------ EMA


def _fixed_assignment_setup():
    """Four far-apart entries, frames around each with a known offset: assignments never change."""
    entries = torch.tensor([[10.0, 10.0], [-10.0, 10.0], [10.0, -10.0], [-10.0, -10.0]])
    generator = torch.Generator().manual_seed(0)
    codes = torch.arange(4).repeat_interleave(25)
    frames = entries[codes] + torch.tensor([1.0, -0.5]) + 0.3 * torch.randn(100, 2, generator=generator)
    targets = torch.stack([frames[codes == k].mean(0) for k in range(4)])
    return entries, frames, codes, targets


def test_ema_moves_entries_to_mean_of_assigned_encoder_residuals():
    entries, frames, codes, targets = _fixed_assignment_setup()
    quantizer = make_quantizer(dim=2, num_levels=1, codebook_size=4, decay=0.7).train()
    quantizer.load_centroids(entries[None])
    x = frames.T[None]  # [1, D, N]
    for _ in range(60):
        out = quantizer(x)
        assert torch.equal(out.codes[0, 0], codes)  # the premise: assignments stay fixed
    torch.testing.assert_close(quantizer.codebooks[0].embedding, targets, atol=1e-4, rtol=0)


def test_old_quantized_value_ema_never_moves_the_codebook():
    """Counter-example: the earlier bug averaged the quantized outputs, so entries stayed put."""
    entries, frames, codes, targets = _fixed_assignment_setup()
    decay = 0.7
    usage, sums = torch.ones(4), entries.clone()
    for _ in range(60):
        quantized = (sums / usage[:, None])[codes]  # what that version fed into the EMA
        counts = torch.bincount(codes, minlength=4).float()
        usage = decay * usage + (1 - decay) * counts
        sums = decay * sums + (1 - decay) * torch.zeros(4, 2).index_add_(0, codes, quantized)
    old_rule = sums / usage[:, None]
    torch.testing.assert_close(old_rule, entries)  # never moved...
    assert (old_rule - targets).norm(dim=1).min() > 1.0  # ...so it never reaches the data means


def test_second_level_ema_tracks_second_level_residuals():
    torch.manual_seed(0)
    centers = torch.randn(6, 4) * 4
    quantizer = make_quantizer(dim=4, num_levels=2, codebook_size=8, decay=0.5).train()
    x = clustered_latents(centers, 2, 100, noise=0.5, generator=torch.Generator().manual_seed(1))
    for _ in range(80):
        quantizer(x)
    codes = quantizer.encode(x)
    frames = as_frames(x)
    level2_input = frames - quantizer.codebooks[0].lookup(codes[:, 0].reshape(-1))
    level2_codes = codes[:, 1].reshape(-1)
    embedding = quantizer.codebooks[1].embedding
    for k in level2_codes.unique():
        torch.testing.assert_close(embedding[k], level2_input[level2_codes == k].mean(0), atol=1e-3, rtol=0)


def test_codebook_updates_only_in_training_mode():
    torch.manual_seed(0)
    quantizer = make_quantizer().train()
    x = torch.randn(2, 8, 20)
    quantizer(x)
    before = {k: v.clone() for k, v in quantizer.state_dict().items()}
    quantizer.eval()
    quantizer(x)
    quantizer.encode(x)
    for key, value in quantizer.state_dict().items():
        assert torch.equal(value, before[key]), key
    quantizer.train()
    quantizer(x)
    assert not torch.equal(quantizer.codebooks[0].embedding_sum, before["codebooks.0.embedding_sum"])


# ------------------------------------------------------------------------------ dead codes


def test_dead_entries_are_replaced_by_batch_frames_and_stay_replaced():
    torch.manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    far = torch.tensor([[1000.0, 1000.0]])
    quantizer = make_quantizer(dim=2, num_levels=1, codebook_size=4, decay=0.9, dead_code_threshold=0.3).train()
    quantizer.codebooks[0].set_codebook(torch.cat([centers, far]), usage=torch.tensor([1.0, 1.0, 1.0, 0.01]))
    x = clustered_latents(centers, 1, 60, noise=0.5)

    out = quantizer(x)
    assert out.stats.dead_codes_replaced.tolist() == [1]
    replaced = quantizer.codebooks[0].embedding[3].clone()
    # The new entry is one of this batch's frames (level 0's residual is the input itself).
    assert torch.cdist(replaced[None], as_frames(x), compute_mode="donot_use_mm_for_euclid_dist").min() < 1e-4
    assert not quantizer.codebooks[0].dead_mask()[3]

    out = quantizer(clustered_latents(centers, 1, 60, noise=0.5))
    assert out.stats.dead_codes_replaced.tolist() == [0]
    after = quantizer.codebooks[0].embedding[3]
    # Still near the data: the stale sums did not pull it back to (1000, 1000).
    assert (after - replaced).norm() < 3.0 and after.norm() < 10.0


def test_dead_threshold_is_relative_to_mean_usage():
    codebook = make_quantizer(dim=2, num_levels=1, codebook_size=4, dead_code_threshold=0.1).codebooks[0]
    usage = torch.tensor([2.0, 1.79, 0.09, 0.12])  # mean 1: entry 2 under 0.1 x the mean, entry 3 over
    for scale in (1.0, 10.0, 1000.0):  # batch size scales every count alike: same decision
        codebook.set_codebook(torch.randn(4, 2), usage=scale * usage)
        assert codebook.dead_mask().tolist() == [False, False, True, False]
        assert float(codebook.ema_usage_fraction()) == 0.75


def test_replacements_per_step_are_bounded():
    torch.manual_seed(0)
    quantizer = make_quantizer(
        dim=2, num_levels=1, codebook_size=8, dead_code_threshold=0.5, dead_code_max_per_step=2
    ).train()
    entries = torch.cat([torch.zeros(1, 2), 1000.0 + torch.arange(7.0)[:, None].expand(7, 2)])
    quantizer.codebooks[0].set_codebook(entries, usage=torch.tensor([1.0] + [1e-3] * 7))
    x = 0.1 * torch.randn(1, 2, 50)
    far = lambda: int((quantizer.codebooks[0].embedding.abs() > 100).any(dim=1).sum())  # noqa: E731
    assert int(quantizer(x).stats.dead_codes_replaced[0]) == 2
    assert far() == 5
    assert int(quantizer(x).stats.dead_codes_replaced[0]) == 2  # still >= 5 dead, still only 2
    assert far() <= 3


def test_gaussian_mixture_training_from_collapsed_codebook():
    """No encoder: EMA plus dead-code replacement alone spread a collapsed codebook over the data."""
    torch.manual_seed(0)
    dim, size = 8, 64
    centers = 3.0 * torch.randn(size, dim)
    quantizer = make_quantizer(
        dim=dim, num_levels=2, codebook_size=size, decay=0.9, dead_code_threshold=0.1, dead_code_max_per_step=16
    ).train()
    quantizer.load_centroids(1e-3 * torch.randn(2, size, dim))  # every entry at the origin
    first = quantizer(clustered_latents(centers, 4, 128, noise=0.3))
    for _ in range(150):
        out = quantizer(clustered_latents(centers, 4, 128, noise=0.3))
    assert first.stats.quantization_error[-1] > 0.9
    assert out.stats.quantization_error[-1] < 0.05
    assert out.stats.quantization_error[0] < 0.15
    assert (out.stats.ema_usage >= 0.9).all()
    assert (out.stats.entropy > 0.9).all()


# ------------------------------------------------------------------------------ interface


def test_encode_decode_round_trip_is_exact_in_eval():
    torch.manual_seed(0)
    quantizer = make_quantizer(num_levels=4).train()
    x = torch.randn(3, 8, 25)
    for _ in range(3):
        quantizer(x)
    quantizer.eval()
    for n_q in (None, 2):
        out = quantizer(x, n_q=n_q)
        codes = quantizer.encode(x, n_q=n_q)
        assert codes.dtype == torch.int64 and codes.shape == (3, n_q or 4, 25)
        assert torch.equal(codes, out.codes)
        assert torch.equal(quantizer.decode(codes), out.quantized)
        assert out.quantized.shape == x.shape
        assert int(codes.min()) >= 0 and int(codes.max()) < 16


def test_bitrate_arithmetic():
    quantizer = ResidualVectorQuantizer(16, QuantizerConfig(num_levels=8, codebook_size=1024), frame_rate=75.0)
    assert quantizer.bitrate_kbps() == pytest.approx(6.0)
    assert quantizer.bitrate_kbps(2) == pytest.approx(2 * 10 * 75 / 1000)
    quantizer.eval()
    out = quantizer(torch.randn(1, 16, 4), n_q=3)
    assert out.stats.bitrate_kbps == pytest.approx(3 * math.log2(1024) * 75 / 1000)
    assert out.stats.n_q == 3
    with pytest.raises(ValueError):
        quantizer.bitrate_kbps(9)


def test_a_levels_bitrate_is_one_fact_for_the_quantizer_and_the_bitstream():
    """K = 1000 (no power of 2, which the config allows): 10 bits a raw code for both, not log2(1000) = 9.97."""
    from codec.formats.bitstream import Header

    quantizer = ResidualVectorQuantizer(16, QuantizerConfig(num_levels=4, codebook_size=1000), frame_rate=50.0)
    assert quantizer.bitrate_kbps() == pytest.approx(4 * 10 * 50 / 1000)
    fields = {f.name: 0 for f in dataclasses.fields(Header)}
    header = Header(**{**fields, "num_levels": 4, "codebook_size": 1000, "sample_rate": 16000, "hop_length": 320})
    assert header.nominal_kbps == quantizer.bitrate_kbps()


def test_quantizer_dropout_draws_every_level_count_in_range():
    torch.manual_seed(0)
    quantizer = make_quantizer(
        dim=4, num_levels=5, codebook_size=8, dropout=True, dropout_min_levels=2, dropout_probability=1.0
    ).train()
    x = torch.randn(1, 4, 8)
    drawn = [quantizer(x).codes.shape[1] for _ in range(80)]
    assert set(drawn) == {2, 3, 4, 5}
    assert quantizer(x, n_q=1).codes.shape[1] == 1  # an explicit n_q wins over dropout
    quantizer.eval()
    assert {quantizer(x).codes.shape[1] for _ in range(5)} == {5}


@pytest.mark.parametrize("probability", [0.0, 0.5])
def test_dropout_probability_is_the_share_of_steps_that_drop_levels(probability):
    # The last level trains on every step without dropout and on 1 / num_levels of the dropout steps.
    quantizer = make_quantizer(
        dim=4, num_levels=4, codebook_size=8, dropout=True, dropout_probability=probability
    ).train()
    x = torch.randn(1, 4, 8)
    drawn = [quantizer(x).stats.n_q for _ in range(400)]
    full = drawn.count(4) / len(drawn)
    assert full == pytest.approx(1 - probability + probability / 4, abs=0.06)
    assert set(drawn) == ({1, 2, 3, 4} if probability else {4})


def test_dropout_draws_depend_only_on_the_seed():
    def draws(seed: int) -> list[int]:
        quantizer = make_quantizer(dim=4, num_levels=6, codebook_size=8, dropout=True, seed=seed).train()
        return [quantizer(torch.randn(1, 4, 6)).stats.n_q for _ in range(20)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)


def test_training_is_deterministic_on_cpu():
    def run() -> dict[str, torch.Tensor]:
        torch.manual_seed(123)
        quantizer = make_quantizer(dropout=True, dead_code_threshold=0.2).train()
        for _ in range(10):
            quantizer(torch.randn(2, 8, 30) * torch.rand(1) * 3)
        return quantizer.state_dict()

    first, second = run(), run()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_stats_shapes_and_ranges():
    torch.manual_seed(0)
    quantizer = make_quantizer(num_levels=3, codebook_size=16).train()
    stats = quantizer(torch.randn(2, 8, 40)).stats
    for name in ("perplexity", "entropy", "batch_usage", "ema_usage", "quantization_error", "dead_codes_replaced"):
        assert getattr(stats, name).shape == (3,), name
    assert ((stats.perplexity >= 1) & (stats.perplexity <= 16 + 1e-4)).all()
    assert ((stats.entropy >= 0) & (stats.entropy <= 1 + 1e-6)).all()
    assert (stats.quantization_error[1:] <= stats.quantization_error[:-1] + 1e-6).all()  # cumulative
    summary = stats.summary()
    assert summary["vq/n_q"] == 3.0 and "vq/perplexity/2" in summary


def test_load_centroids_sets_entries_and_survives_state_dict():
    torch.manual_seed(0)
    quantizer = make_quantizer(num_levels=2)
    centroids = torch.randn(2, 16, 8)
    quantizer.load_centroids(centroids.numpy())
    for level in range(2):
        torch.testing.assert_close(quantizer.codebooks[level].embedding, centroids[level])
        assert quantizer.codebooks[level].is_initialized()
    fresh = make_quantizer(num_levels=2)
    assert not fresh.codebooks[0].is_initialized()
    fresh.load_state_dict(quantizer.state_dict())
    assert fresh.codebooks[0].is_initialized()
    x = torch.randn(2, 8, 10)
    assert torch.equal(fresh.encode(x), quantizer.encode(x))
    # Seeded levels are not re-seeded from the first training batch: its codes are the seeded ones.
    assert torch.equal(fresh.train()(x).codes[:, :1], quantizer.encode(x, 1))


def test_unseeded_codebook_starts_from_batch_frames():
    torch.manual_seed(0)
    quantizer = make_quantizer(dim=4, num_levels=1, codebook_size=8, decay=0.99).train()
    x = torch.randn(1, 4, 50)
    quantizer(x)
    codebook = quantizer.codebooks[0]
    assert codebook.is_initialized()
    # Seeds are batch frames.
    seeds = torch.randn(8, 4)
    codebook.initialize_from(seeds)  # already seeded: a no-op
    assert not torch.equal(codebook.embedding, seeds)
    fresh = make_quantizer(dim=4, num_levels=1, codebook_size=8, decay=0.99).codebooks[0]
    fresh.initialize_from(as_frames(x))
    assert torch.cdist(fresh.embedding, as_frames(x)).min(dim=1).values.max() < 1e-2  # cdist rounding


def test_seed_weighs_as_one_frame_in_the_first_update():
    """Default seed usage is one frame's EMA weight: the first update moves a picked entry to the
    mean of its seed and its frames, and leaves an unpicked entry where it was."""
    torch.manual_seed(0)
    decay = 0.99
    quantizer = make_quantizer(dim=4, num_levels=1, codebook_size=8, decay=decay).train()
    seeds = torch.randn(8, 4) * 3
    quantizer.set_codebook(0, seeds)
    x = torch.randn(1, 4, 40)
    codes = quantizer(x).codes[0, 0]
    frames = as_frames(x)
    after = quantizer.codebooks[0].embedding
    for k in range(8):
        mine = frames[codes == k]
        expected = (decay * seeds[k] + mine.sum(0)) / (decay + len(mine))
        torch.testing.assert_close(after[k], expected, atol=1e-3, rtol=1e-3)


def test_bad_inputs_raise_clear_errors():
    quantizer = make_quantizer()
    with pytest.raises(ValueError, match=r"\[B, 8, T\]"):
        quantizer(torch.randn(2, 7, 5))
    with pytest.raises(ValueError, match="n_q"):
        quantizer(torch.randn(2, 8, 5), n_q=4)
    with pytest.raises(ValueError, match="codes"):
        quantizer.decode(torch.zeros(2, 5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="centroids"):
        quantizer.load_centroids(torch.randn(4, 16, 8))


@pytest.mark.parametrize(
    "field, value",
    [
        ("decay", 1.0),
        ("codebook_size", 1),
        ("dropout_min_levels", 0),
        ("dropout_min_levels", 13),
        ("epsilon", 0.0),
        ("dropout_probability", 1.5),
        ("dead_code_max_per_step", 0),
    ],
)
def test_config_rejects_bad_values(field, value):
    data = dataclasses.asdict(QuantizerConfig())
    data[field] = value
    with pytest.raises(ConfigError, match=field):
        from_dict(QuantizerConfig, data)
