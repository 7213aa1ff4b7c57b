"""codec/runtime/devices.py: one resolution of the device setting for training and evaluation."""

import pytest
import torch

from codec.runtime.devices import DeviceError, resolve_device


def test_cpu_auto_and_unknown():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_cuda_without_cuda_is_an_error_never_a_fallback():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(DeviceError, match="torch sees no CUDA device"):
        resolve_device("cuda")
