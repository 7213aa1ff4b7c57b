"""Code statistics on known counts."""

import math

import numpy as np
import pytest

from codec.tokens.stats import CodeCounts, model_bits, token_stats


def test_counts_entropy_perplexity_and_the_bits_under_the_models_distribution():
    codes = [np.array([[0, 0, 1, 1], [2, 2, 2, 2]]), np.array([[2, 3], [2, 2]])]
    counts = CodeCounts.of(2, 4, codes).counts
    assert counts.tolist() == [[2, 2, 1, 1], [0, 0, 6, 0]]
    uniform = np.full((2, 4), 0.25)
    assert model_bits(counts, uniform).tolist() == [2.0, 2.0]
    corpora = {"c": {"splits": {"train": {"rows": 2, "frames": 6}, "test": {"rows": 0, "frames": 0}}}}
    stats = token_stats({"c": CodeCounts(counts)}, corpora, 50.0, uniform, [{"corpus": "c", "id": "x", "reason": "r"}])
    c = stats["corpora"]["c"]
    entropy0 = -(2 * (1 / 3) * math.log2(1 / 3) + 2 * (1 / 6) * math.log2(1 / 6))
    assert c["levels"][0]["entropy_bits"] == pytest.approx(entropy0, abs=1e-6)
    assert c["levels"][0]["perplexity"] == pytest.approx(2**entropy0, abs=1e-3)
    assert c["levels"][1] == {
        "level": 1,
        "used_fraction": 0.25,
        "perplexity": 1.0,
        "entropy_bits": 0.0,
        "model_bits": 2.0,
    }
    assert c["entropy_kbps"] == pytest.approx(entropy0 * 50 / 1000, abs=1e-6)
    assert c["model_coded_kbps"] == pytest.approx(0.2) and c["nominal_kbps"] == pytest.approx(0.2)
    assert (c["rows"], c["frames"], c["tokens"], c["skipped"]) == (2, 6, 12, 1)
