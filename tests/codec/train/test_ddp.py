"""Two CPU processes (gloo) train one codec with DDP: both must end with identical weights."""

import socket

import torch
import torch.multiprocessing as mp

from codec.train import checkpoint as ckpt
from codec.train.loop import train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, cfg, loss, shards, init, folder, out_dir):
    import os

    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    result = train(
        cfg,
        loss,
        shards=shards,
        init=init,
        checkpoints=folder,
        seed=3,
        progress=False,
        out=out_dir / "codec.safetensors",
    )
    torch.save(
        {
            "state": result.model_state,
            "output": str(result.output),
            "step": result.step,
            "ranks": result.ranks,
            "digest": result.weights_digest,
        },
        out_dir / f"rank{rank}.pt",
    )


def test_two_gloo_ranks_end_with_identical_weights(tiny):
    cfg = tiny.train(steps=4, checkpoint_every=2, validate_every=2, batch_size=2)
    loss = tiny.loss(adversarial_start_step=2)
    folder = tiny.path / "ddp" / "checkpoints"
    # spawn, not fork: a child forked from this pytest process inherits locks held by the threads of
    # earlier tests (Arrow's pools, OpenMP) and can hang for ever reading its first shard.
    mp.start_processes(
        _worker,
        args=(2, _free_port(), cfg, loss, tiny.shards, tiny.init, folder, tiny.path),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    r0, r1 = (torch.load(tiny.path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["step"] == r1["step"] == 4
    assert r0["ranks"] == r1["ranks"] == 2 and len(r0["digest"]) == 64 and r0["digest"] == r1["digest"]
    assert r0["state"].keys() == r1["state"].keys()
    for name in r0["state"]:
        assert torch.equal(r0["state"][name], r1["state"][name]), name
    # Only rank 0 writes: its checkpoint and exported weights; rank 1 reports no output file.
    assert r0["output"].endswith("codec.safetensors") and r1["output"] == "None"
    final = ckpt.load_checkpoint(ckpt.checkpoint_path(folder, 4))
    assert all(torch.equal(final["codec"][k], r0["state"][k]) for k in final["codec"])
    assert final["data"]["world_size"] == 2


def test_ranks_that_end_with_other_weights_stop_the_run(monkeypatch):
    from codec.config.model import ModelConfig
    from codec.config.quantizer import QuantizerConfig
    from codec.model.codec import build_codec
    from codec.train import loop
    from codec.train.distributed import DistInfo

    codec = build_codec(
        ModelConfig(channels=4, latent_dim=8, strides=[2, 4], n_residual_layers=1),
        QuantizerConfig(num_levels=2, codebook_size=16),
        16000,
    )
    info = DistInfo(rank=0, world_size=3, local_rank=0, device=torch.device("cpu"), owns_group=True)
    mine = loop.ranks_agree(codec, DistInfo(0, 1, 0, torch.device("cpu"), owns_group=False))
    monkeypatch.setattr(loop, "all_gather_objects", lambda obj, _: [obj, obj, "f" * 64])
    try:
        loop.ranks_agree(codec, info)
    except RuntimeError as exc:
        assert "ranks [2] ended with other weights than rank 0" in str(exc)
    else:
        raise AssertionError("diverged ranks were not noticed")
    monkeypatch.setattr(loop, "all_gather_objects", lambda obj, _: [obj] * 3)
    assert loop.ranks_agree(codec, info) == mine
