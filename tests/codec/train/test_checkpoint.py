import pickle
import random

import numpy as np
import pytest
import torch

from codec.train import checkpoint as ckpt


def _state() -> dict:
    return {
        "step": 7,
        "weights": {"w": torch.arange(64, dtype=torch.float32) * 1.5 + 0.25},
        "nested": [1, 2.5, None, "x", (3, 4)],
        "rng": ckpt.capture_rng_state(),
    }


def test_round_trip_keeps_every_value(tmp_path):
    state = _state()
    path = ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, 7), state)
    assert path.name == "step-00000007.pt"
    loaded = ckpt.load_checkpoint(path)
    assert ckpt.state_digest(loaded) == ckpt.state_digest(state)
    assert torch.equal(loaded["weights"]["w"], state["weights"]["w"])
    assert loaded["nested"] == state["nested"]
    # Plain values only: the file loads with torch's safe loader directly.
    assert torch.load(path, weights_only=True)["format"] == ckpt.FORMAT


def test_truncated_file_is_refused_with_its_name(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "step-00000001.pt", _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match=r"step-00000001\.pt.*truncated or corrupt"):
        ckpt.load_checkpoint(path)


def test_tampered_tensor_bytes_are_detected(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "step-00000001.pt", _state())
    data = bytearray(path.read_bytes())
    needle = (torch.arange(64, dtype=torch.float32) * 1.5 + 0.25).numpy().tobytes()
    at = bytes(data).find(needle)
    assert at >= 0, "tensor bytes should be stored verbatim in the zip"
    data[at + 40] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match=r"step-00000001\.pt"):
        ckpt.load_checkpoint(path)


class Foreign:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_foreign_pickles_and_files_are_refused(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"x": Foreign()}, evil)
    with pytest.raises(ckpt.CheckpointError, match="foreign or unsafe pickle"):
        ckpt.load_checkpoint(evil)
    assert "must never run" not in capsys.readouterr().out
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps(Foreign()))
    with pytest.raises(ckpt.CheckpointError, match="legacy.pt"):
        ckpt.load_checkpoint(legacy)
    other = tmp_path / "other.pt"
    torch.save({"model": torch.zeros(2)}, other)
    with pytest.raises(ckpt.CheckpointError, match="not a TeluCodec training checkpoint"):
        ckpt.load_checkpoint(other)
    with pytest.raises(ckpt.CheckpointError, match="no such checkpoint"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trip():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = ckpt.capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt.restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()) == expected


def test_listing_pruning_and_moving_aside(tmp_path):
    for step in (2, 10, 4, 8):
        ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, step), {"step": step})
    ckpt.save_checkpoint(tmp_path / ckpt.BEST_NAME, {"step": 4})
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [2, 4, 8, 10]
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000010.pt"
    removed = ckpt.prune_checkpoints(tmp_path, keep_last=2)
    assert sorted(p.name for p in removed) == ["step-00000002.pt", "step-00000004.pt"]
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [8, 10]
    assert (tmp_path / ckpt.BEST_NAME).is_file()
    moved = ckpt.move_aside(tmp_path)
    assert sorted(p.name for p in moved) == ["best.pt", "step-00000008.pt", "step-00000010.pt"]
    assert ckpt.latest_checkpoint(tmp_path) is None
    assert ckpt.load_checkpoint(tmp_path / ckpt.STALE_DIR / "step-00000010.pt") == {"step": 10}


def test_same_state_gives_identical_checkpoint_bytes(tmp_path):
    state = {"model": {"w": torch.arange(6.0)}, "step": 3}
    ckpt.save_checkpoint(tmp_path / "a.pt", state)
    ckpt.save_checkpoint(tmp_path / "b.pt", state)  # another temporary file name on the way
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
