"""Shared test setup: small deterministic CPU runs."""

import os

import pytest

# Two cores on CI: keep intra-op threads low so parallel helpers don't oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CORPUS = os.path.join(os.path.dirname(REPO_ROOT), "shared", "corpora", "chai-bisket-te")


@pytest.fixture
def repo_root() -> str:
    return REPO_ROOT
