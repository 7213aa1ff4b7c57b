"""The tokenize speed benchmark runs the tokenize stage and `telucodec encode` on a folder with a tiny codec on
tiny shards, then reads the codes back both ways (its timings are its output, never asserted here). The
Snakemake scaling runs (a clone of the checkout, two Snakemake starts) are left out: `make check-parity` covers
the Snakemake tokenize rules."""

from __future__ import annotations

from benchmarks import tokenize_speed
from codec.config.export import ExportConfig
from codec.formats.export import export_codec
from tests.benchmarks.conftest import numbers, positive, table
from tests.codec.conftest import make_tiny_codec


def test_benchmark_smoke(tmp_path, tiny_shards, capsys):
    model = tmp_path / "tiny.safetensors"
    export_codec(make_tiny_codec(), model, ExportConfig())
    work = tmp_path / "work"
    tokenize_speed.main(["--shards", str(tiny_shards), "--models", str(model), "--work", str(work), "--skip-snakemake"])
    out = capsys.readouterr().out
    assert out.startswith("24 segments, 0.8 min of audio, ")  # 6 speakers x 4 utterances of 2 s
    rows = table(out)
    systems, readers = rows[:3], rows[3:]
    assert [r[:2] for r in systems] == [
        ["tiny.safetensors", "tokenize stage"],
        ["tiny.safetensors", "telucodec encode (folder)"],
        ["tiny.safetensors", "ratio stage / CLI"],
    ]
    assert all(positive(numbers(" ".join(r[2:]))) for r in systems[:2])
    assert systems[2][3].endswith("x") and positive(numbers(systems[2][3]))
    assert [(r[0], r[1]) for r in readers] == [
        (name, levels) for name in ("TokenDataset, a column per level", "one nested list<list<int16>> column")
        for levels in ("all", "2")
    ]  # fmt: skip
    assert all(positive(numbers(" ".join(r[2:]))) for r in readers)
    assert len(list((work / "tcq").rglob("*.tcq"))) == 24  # the CLI coded every segment
    assert (work / "tokens" / "manifest.json").is_file()
