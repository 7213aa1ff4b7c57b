"""Two CPU ranks (gloo) keep identical codebooks; their EMA equals one process on both batches."""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from codec.config.quantizer import QuantizerConfig
from codec.quantization.core_vq import ResidualVectorQuantizer

DIM, SIZE, LEVELS, STEPS, BATCH, LENGTH = 4, 16, 3, 6, 2, 24


def rank_batches(rank: int) -> list[torch.Tensor]:
    """Each rank's own data: clusters that differ by rank, so plain local EMAs would diverge."""
    generator = torch.Generator().manual_seed(100 + rank)
    centers = torch.randn(4, DIM, generator=generator) * (2.0 + rank)
    batches = []
    for _ in range(STEPS):
        picks = torch.randint(4, (BATCH * LENGTH,), generator=generator)
        frames = centers[picks] + 0.2 * torch.randn(BATCH * LENGTH, DIM, generator=generator)
        batches.append(frames.view(BATCH, LENGTH, DIM).transpose(1, 2).contiguous())
    return batches


def seeds() -> torch.Tensor:
    """Initial centroids shared by every run: a few useful entries, the rest far away (dead)."""
    centroids = 1000.0 + torch.randn(LEVELS, SIZE, DIM, generator=torch.Generator().manual_seed(7))
    centroids[:, :4] = torch.randn(LEVELS, 4, DIM, generator=torch.Generator().manual_seed(8))
    return centroids


def run_quantizer(
    batches: list[torch.Tensor], config: QuantizerConfig, seeded: bool, far_usage: float = 1.0
) -> tuple[dict, list]:
    quantizer = ResidualVectorQuantizer(DIM, config, frame_rate=50.0, seed=11).train()
    if seeded:
        usage = torch.tensor([1.0] * 4 + [far_usage] * (SIZE - 4))
        for level, centroids in enumerate(seeds()):
            quantizer.set_codebook(level, centroids, usage)
    replaced = [quantizer(x).stats.dead_codes_replaced for x in batches]
    return quantizer.state_dict(), replaced


def worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        torch.manual_seed(rank)  # different global RNG per rank: replacement frames must still agree
        batches = rank_batches(rank)
        # Dead codes, dropout and first-batch seeding, all exercised together.
        busy = QuantizerConfig(
            num_levels=LEVELS,
            codebook_size=SIZE,
            decay=0.8,
            dead_code_threshold=0.3,
            dropout=True,
            dead_code_max_per_step=4,
        )
        busy_state, replaced = run_quantizer(batches, busy, seeded=False)
        seeded_state, seeded_replaced = run_quantizer(batches, busy, seeded=True)
        # No replacement, no dropout: the reduced EMA must equal one process on both ranks' frames.
        plain = QuantizerConfig(
            num_levels=LEVELS, codebook_size=SIZE, decay=0.8, dead_code_threshold=0.0, dropout=False
        )
        plain_state, _ = run_quantizer(batches, plain, seeded=True)
        # One step from far-away seeds: the entries replaced on every rank must be rank 0's frames.
        one_step, _ = run_quantizer(batches[:1], busy, seeded=True, far_usage=0.01)
        torch.save(
            {
                "one_step": one_step,
                "busy": busy_state,
                "seeded": seeded_state,
                "plain": plain_state,
                "replaced": torch.stack([r.sum() for r in replaced + seeded_replaced]),
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_two_ranks_keep_identical_codebooks(tmp_path):
    mp.spawn(worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    for run in ("one_step", "busy", "seeded", "plain"):
        assert results[0][run].keys() == results[1][run].keys()
        for key, value in results[0][run].items():
            assert torch.equal(value, results[1][run][key]), (run, key)
    assert int(results[0]["replaced"].sum()) > 0  # dead-code replacement did happen
    assert torch.equal(results[0]["replaced"], results[1]["replaced"])
    assert (results[0]["seeded"]["codebooks.0.embedding_sum"].abs() < 100).all()  # every far entry replaced

    codebook = ResidualVectorQuantizer(DIM, QuantizerConfig(num_levels=LEVELS, codebook_size=SIZE), 50.0).codebooks[0]
    codebook.load_state_dict(
        {k.removeprefix("codebooks.0."): v for k, v in results[0]["one_step"].items() if k.startswith("codebooks.0.")}
    )
    new_entries = codebook.embedding[4:]
    rank0_frames = rank_batches(0)[0].transpose(1, 2).reshape(-1, DIM)
    assert (new_entries.abs() < 100).sum() >= 4 * DIM  # dead_code_max_per_step entries replaced
    replaced = new_entries[(new_entries.abs() < 100).all(dim=1)]
    # Exact distances: cdist's default matmul path has errors of ~1e-3 at these magnitudes.
    distances = torch.cdist(replaced, rank0_frames, compute_mode="donot_use_mm_for_euclid_dist")
    assert distances.min(dim=1).values.max() < 1e-4

    # Summing counts and residual sums over ranks = one process seeing both ranks' frames.
    both = [torch.cat(pair, dim=0) for pair in zip(rank_batches(0), rank_batches(1))]
    plain = QuantizerConfig(num_levels=LEVELS, codebook_size=SIZE, decay=0.8, dead_code_threshold=0.0, dropout=False)
    single, _ = run_quantizer(both, plain, seeded=True)
    for key, value in single.items():
        torch.testing.assert_close(results[0]["plain"][key], value, rtol=1e-5, atol=1e-5)
