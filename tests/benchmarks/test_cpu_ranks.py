"""The one-run-on-every-core benchmark runs the real train stage three ways on tiny input (a tiny codec, two
steps): one thread, two threads, and two torchrun ranks of one thread each with half the batch. Its figures are
its output, never asserted here."""

from __future__ import annotations

import pytest
import yaml

from benchmarks import cpu_ranks
from experiments.stage_runs import run_stage, seed_args
from tests.benchmarks.conftest import TINY_PARAMS, numbers, positive, table


@pytest.mark.slow  # three train stages, one of them two torchrun ranks: about 20 s
def test_benchmark_smoke(tmp_path, tiny_shards, tiny_params, capsys):
    seed = tmp_path / "seed.safetensors"
    run_stage(seed_args(tiny_shards, seed, tiny_params))
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_PARAMS), encoding="utf-8")
    cpu_ranks.main(
        ["--shards", str(tiny_shards), "--init", str(seed), "--recipe", str(recipe), "--steps", "2", "--ranks", "2"]
    )
    out = capsys.readouterr().out
    rows = table(out)
    assert [r[0] for r in rows] == [
        "1 process x 1 thread", "1 process x 2 threads", "2 processes x 1 thread (torchrun, gloo)"
    ]  # fmt: skip
    assert [r[1] for r in rows] == ["1", "2", "2"]  # cores
    assert all(positive(numbers(" ".join(r[2:4]))) for r in rows)
    assert rows[0][4] == "1.00x" and rows[0][5] == "1.00x"  # one thread against itself
    assert f"{recipe}: 2 steps of a global batch of 2" in out


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(tmp_path, tiny_shards):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_PARAMS), encoding="utf-8")
    try:
        cpu_ranks.main(["--shards", str(tiny_shards), "--init", "x", "--recipe", str(recipe), "--ranks", "3"])
    except SystemExit as exc:
        assert "does not split over 3 ranks" in str(exc)
    else:
        raise AssertionError("no error")
