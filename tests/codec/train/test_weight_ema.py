"""The EMA of the codec's weights: its arithmetic, and that a run validates, checkpoints, resumes and exports it."""

import pytest
import torch
from torch import nn

from codec.formats.weights import load_codec, read_codec_weights
from codec.train import checkpoint as ckpt
from codec.train.weight_ema import WeightEMA, ema_decay_at


def test_the_decay_warms_up_then_holds():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.999) == pytest.approx(0.91)
    assert ema_decay_at(10**6, 0.999) == 0.999


def test_update_averages_parameters_and_applied_swaps_them_in_and_back():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = WeightEMA(module, decay=0.5)
    start = {k: v.clone() for k, v in module.state_dict().items()}
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    ema.update(module, step=10**6)  # past the warm-up: decay 0.5
    live = {k: v.clone() for k, v in module.state_dict().items()}
    for name, _ in module.named_parameters():
        assert torch.allclose(ema.shadow[name], start[name] + 0.5)
    averaged = ema.module_state(module)
    assert torch.equal(averaged["1.running_mean"], live["1.running_mean"])  # buffers: the live ones
    with ema.applied(module):
        assert torch.allclose(module[0].weight, start["0.weight"] + 0.5)
    for k, v in module.state_dict().items():
        assert torch.equal(v, live[k]), k  # its own weights are back
    other = WeightEMA(module, decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert all(torch.equal(other.shadow[k], ema.shadow[k]) for k in ema.shadow)


def test_a_run_with_weight_ema_exports_the_average_and_resumes_exactly(tiny):
    cfg = tiny.train(steps=6, checkpoint_every=2, validate_every=3, weight_ema_decay=0.9, final_weights="last")
    straight = tiny.run(cfg, name="straight", out=tiny.path / "straight.safetensors")
    _, _, meta = read_codec_weights(straight.output)
    assert meta["weight_ema_decay"] == "0.9"
    last = ckpt.load_checkpoint(ckpt.checkpoint_path(tiny.path / "straight" / "checkpoints", 6))
    exported = load_codec(straight.output).state_dict()
    for name, value in last["weight_ema"].items():
        assert torch.equal(exported[name], value), name
    assert not torch.equal(exported["decoder.output_scale"], last["codec"]["decoder.output_scale"])
    # Killed after step 4's checkpoint: the resumed run continues the average where it was.
    folder = tiny.path / "resumed" / "checkpoints"
    folder.mkdir(parents=True)
    src = tiny.path / "straight" / "checkpoints"
    ckpt.save_checkpoint(ckpt.checkpoint_path(folder, 4), ckpt.load_checkpoint(ckpt.checkpoint_path(src, 4)))
    resumed = tiny.run(cfg, name="resumed", out=tiny.path / "resumed.safetensors")
    assert resumed.resumed_from == 4
    again = load_codec(resumed.output).state_dict()
    for name, value in exported.items():
        assert torch.equal(again[name], value), name
