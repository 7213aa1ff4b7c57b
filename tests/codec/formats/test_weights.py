import json

import pytest
import torch
from safetensors.torch import save_file

from codec.formats.weights import WeightsError, load_codec, read_codec_weights, save_codec_weights


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


def test_equal_weights_give_identical_bytes_in_separate_processes(tmp_path):
    """The safetensors writer orders its header keys at random per process; ours sorts them."""
    import subprocess
    import sys

    code = (
        "import sys, torch; from codec.formats.weights import save_codec_weights;"
        "t = {f'w{i}': torch.full((3,), float(i)) for i in range(12)};"
        "save_codec_weights(sys.argv[1], t, {'model': {}, 'quantizer': {}, 'sample_rate': 16000},"
        " {f'k{i}': str(i) for i in range(12)})"
    )
    for name in ("a", "b", "c"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True)
    data = [(tmp_path / n).read_bytes() for n in ("a", "b", "c")]
    assert data[0] == data[1] == data[2]
    from codec.formats.weights import read_codec_weights

    tensors, config, metadata = read_codec_weights(tmp_path / "a")
    assert torch.equal(tensors["w7"], torch.full((3,), 7.0)) and metadata["k11"] == "11"
