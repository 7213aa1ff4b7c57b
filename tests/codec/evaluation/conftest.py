"""Fixtures of the evaluation tests."""

import pytest

from codec.formats.weights import save_codec_weights
from tests.codec.evaluation.support import tiny_codec


@pytest.fixture(scope="session")
def tiny_codec_file(tmp_path_factory):
    """Weights file of :func:`tiny_codec`."""
    codec = tiny_codec()
    return save_codec_weights(tmp_path_factory.mktemp("model") / "codec.safetensors", codec.state_dict(), codec.config)
