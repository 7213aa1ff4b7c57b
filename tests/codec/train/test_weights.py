import json

import pytest
import torch
from safetensors.torch import save_file

from codec.train.weights import WeightsError, load_codec, read_codec_weights, save_codec_weights


def test_round_trip_rebuilds_the_same_codec(tiny_init, tmp_path):
    codec = load_codec(tiny_init)
    path = save_codec_weights(tmp_path / "copy.safetensors", codec.state_dict(), codec.config, {"step": "3"})
    tensors, config, meta = read_codec_weights(path)
    assert config == codec.config and meta["step"] == "3"
    again = load_codec(path)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in codec.state_dict().items())
    x = torch.randn(1, 1, 256) * 0.1
    codec.eval(), again.eval()
    assert torch.equal(codec(x).reconstruction, again(x).reconstruction)


def test_unusable_files_are_refused_with_a_reason(tiny_init, tmp_path):
    with pytest.raises(WeightsError, match="no such"):
        load_codec(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    with pytest.raises(WeightsError, match="junk.safetensors: not a readable safetensors"):
        load_codec(junk)
    tensors, config, _ = read_codec_weights(tiny_init)
    bare = tmp_path / "bare.safetensors"
    save_file(tensors, str(bare))
    with pytest.raises(WeightsError, match="no 'config' entry"):
        load_codec(bare)
    wrong = tmp_path / "wrong.safetensors"
    bigger = {**config, "model": {**config["model"], "channels": 8}}
    save_file(tensors, str(wrong), metadata={"config": json.dumps(bigger)})
    with pytest.raises(WeightsError, match="do not fit the codec config"):
        load_codec(wrong)
