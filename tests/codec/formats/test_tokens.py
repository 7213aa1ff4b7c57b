"""Token shards: the writer's schema, level selection, the DataLoader dataset's order and DDP split, and loading
with plain pyarrow and Hugging Face `datasets`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from codec.formats.tokens import (
    TokenDataset,
    TokenFileError,
    TokenRow,
    TokenWriter,
    collate_tokens,
    file_info,
    iter_tokens,
    read_row_group,
)

LEVELS = 3


def write_files(folder: Path, files: int = 2, rows: int = 10, group: int = 3) -> list[Path]:
    """``files`` token files of ``rows`` rows each; row ``r`` of file ``f`` has codes ``level * 1000 + r`` of
    ``r + 1`` frames, id ``f{f}-r{r:02d}``."""
    paths = []
    for f in range(files):
        path = folder / f"part-{f:05d}.parquet"
        with TokenWriter(path, LEVELS, "model-x", group) as writer:
            for r in range(rows):
                codes = np.stack([np.full(r + 1, level * 1000 + r) for level in range(LEVELS)])
                writer.add(
                    TokenRow(
                        f"f{f}-r{r:02d}",
                        f"f{f}-r{r:02d}",
                        "spk",
                        None,
                        f"text {r}",
                        "train",
                        320 * (r + 1),
                        16000,
                        50.0,
                        codes,
                    )
                )
        paths.append(path)
    return paths


def test_rows_read_back_with_the_levels_asked(tmp_path):
    paths = write_files(tmp_path)
    assert file_info(paths[0]) == {"levels": 3, "model_id": "model-x", "num_rows": 10, "num_row_groups": 4}
    rows = list(iter_tokens(paths, columns=["id", "text"]))
    assert [r["id"] for r in rows] == [f"f{f}-r{r:02d}" for f in range(2) for r in range(10)]
    for r in rows[:10]:
        n = int(r["id"][-2:])
        assert r["codes"].shape == (3, n + 1) and r["codes"].dtype == np.int16 and r["text"] == f"text {n}"
        assert (r["codes"][:, 0] == [n, 1000 + n, 2000 + n]).all()
    first_two = read_row_group(paths[0], 1, levels=2)
    assert [r["codes"][:, 0].tolist() for r in first_two] == [[3, 1003], [4, 1004], [5, 1005]]
    picked = read_row_group(paths[0], 0, levels=[2, 0])
    assert picked[1]["codes"][:, 0].tolist() == [2001, 1]
    with pytest.raises(ValueError, match="levels"):
        read_row_group(paths[0], 0, levels=4)


def test_a_file_of_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(pq.read_table(write_files(tmp_path, files=1)[0]).replace_schema_metadata({}), path)
    with pytest.raises(TokenFileError, match="schema version"):
        file_info(path)


def test_dataset_order_follows_seed_and_epoch_and_ranks_split_the_row_groups(tmp_path):
    paths = write_files(tmp_path, files=3, rows=10, group=3)  # 4 groups a file: 12 in all

    def ids(ds):
        return [row["id"] for row in ds]

    ds = TokenDataset(paths, seed=7)
    once, again = ids(ds), ids(TokenDataset(paths, seed=7))
    assert once == again and sorted(once) == sorted(r["id"] for r in iter_tokens(paths))
    ds.set_epoch(1)
    assert ids(ds) != once and sorted(ids(ds)) == sorted(once)
    ranks = [TokenDataset(paths, seed=7, rank=r, world_size=5) for r in range(5)]
    groups = [rank.rank_groups() for rank in ranks]
    assert all(len(g) == 2 for g in groups)  # 12 groups: 10 dealt, 2 left out so ranks step in lockstep
    flat = [g for rank in groups for g in rank]
    assert len(set(flat)) == 10
    uneven = [TokenDataset(paths, seed=7, rank=r, world_size=5, drop_uneven=False).rank_groups() for r in range(5)]
    assert sorted(g for rank in uneven for g in rank) == sorted(TokenDataset(paths).groups)


def test_dataloader_workers_read_each_row_once(tmp_path):
    paths = write_files(tmp_path, files=2, rows=10, group=3)
    ds = TokenDataset(paths, levels=2, seed=1)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_tokens)
    seen = []
    for batch in loader:
        assert batch["codes"].dtype == torch.int64 and batch["codes"].shape[1] == 2
        for codes, length, name in zip(batch["codes"], batch["lengths"], batch["id"]):
            n = int(name[-2:])
            assert length == n + 1 and (codes[:, length:] == -1).all() and codes[0, 0] == n
        seen += batch["id"]
    assert sorted(seen) == sorted(r["id"] for r in iter_tokens(paths))


def test_hugging_face_datasets_loads_the_token_files(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="the Hugging Face datasets package is not installed")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    paths = write_files(tmp_path, files=2, rows=4)
    data = datasets.load_dataset(
        "parquet", data_files={"train": [str(p) for p in paths]}, cache_dir=str(tmp_path / "cache"), split="train"
    )
    assert data.num_rows == 8
    row = data[5]
    assert row["id"] == "f1-r01" and row["codes_02"] == [2001, 2001] and row["num_frames"] == 2
