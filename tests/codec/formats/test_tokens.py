"""Token shards: the writer's schema, level selection, the DataLoader dataset's order and DDP split, loading with
plain pyarrow and Hugging Face `datasets`, and the readers refusing every kind of bad file with a TokenFileError
that names the file (and the row)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from codec.formats import tokens
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
K = 4096


def write_files(
    folder: Path, files: int = 2, rows: int = 10, group: int = 3, model_id: str = "model-x", codebook_size: int = K
) -> list[Path]:
    """``files`` token files of ``rows`` rows each; row ``r`` of file ``f`` has codes ``level * 1000 + r`` of
    ``r + 1`` frames, id ``f{f}-r{r:02d}``."""
    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        path = folder / f"part-{f:05d}.parquet"
        with TokenWriter(path, LEVELS, model_id, group, codebook_size=codebook_size) as writer:
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
    assert file_info(paths[0]) == {
        "levels": 3,
        "model_id": "model-x",
        "codebook_size": K,
        "num_rows": 10,
        "num_row_groups": 4,
    }
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
    table = pq.read_table(write_files(tmp_path, files=1)[0])
    for name, metadata in (("none", {}), ("v1", {**table.schema.metadata, b"telucodec.tokens.schema_version": b"1"})):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table.replace_schema_metadata(metadata), path)
        with pytest.raises(TokenFileError, match=f"^{re.escape(str(path))}: token schema version .*tokenize"):
            file_info(path)


# ------------------------------------------------------------------------------------------ bad files
#
# Each case turns the table of a good file (10 rows: row r has r + 1 frames, codes level * 1000 + r, row groups
# of 4 rows) into a bad one. Row cases name the row the readers must report.


def _codes(table: pa.Table, level: int) -> list[list[int | None] | None]:
    return table.column(tokens.level_column(level)).to_pylist()


def _with_codes(table: pa.Table, level: int, rows: list[list[int | None] | None]) -> pa.Table:
    name = tokens.level_column(level)
    return table.set_column(table.schema.get_field_index(name), name, pa.array(rows, pa.list_(pa.int16())))


def _edit_code(level: int, row: int, value: int | None) -> Callable[[pa.Table], pa.Table]:
    def edit(table: pa.Table) -> pa.Table:
        rows = _codes(table, level)
        rows[row] = [value, *rows[row][1:]]  # type: ignore[index]
        return _with_codes(table, level, rows)

    return edit


def _resplit(table: pa.Table) -> pa.Table:
    """codes_01's codes re-cut so that rows 0 and 1 hold 2 and 1 of them: the totals match, the rows do not."""
    rows = _codes(table, 1)
    flat = [c for r in rows for c in r]  # type: ignore[union-attr]
    lengths = [2, 1] + [len(r) for r in rows[2:]]  # type: ignore[arg-type]
    starts = np.cumsum([0, *lengths]).tolist()
    return _with_codes(table, 1, [flat[a:b] for a, b in zip(starts[:-1], starts[1:])])


def _longer(table: pa.Table) -> pa.Table:
    rows = _codes(table, 2)
    rows[2] = [*rows[2], 2002]  # type: ignore[misc]
    return _with_codes(table, 2, rows)


def _null_row(table: pa.Table) -> pa.Table:
    rows = _codes(table, 0)
    rows[7] = None
    return _with_codes(table, 0, rows)


def _set(name: str, row: int, value: object) -> Callable[[pa.Table], pa.Table]:
    def edit(table: pa.Table) -> pa.Table:
        values = table.column(name).to_pylist()
        values[row] = value
        field = table.schema.field(name)
        array = pa.array(values, field.type.value_type if pa.types.is_dictionary(field.type) else field.type)
        return table.set_column(table.schema.get_field_index(name), field.name, array)

    return edit


ROW_CASES = {
    "levels cut differently": (_resplit, 0, "codes_01 holds 2 codes, its num_frames is 1"),
    "a level with one code more": (_longer, 2, "codes_02 holds 4 codes, its num_frames is 3"),
    "a code of K": (_edit_code(0, 3, K), 3, f"codes_00 holds code {K}, outside \\[0, {K}\\)"),
    "a negative code": (_edit_code(1, 5, -1), 5, f"codes_01 holds code -1, outside \\[0, {K}\\)"),
    "int16's lowest code": (_edit_code(2, 1, -(2**15)), 1, "codes_02 holds code -32768"),
    "a null code": (_edit_code(2, 6, None), 6, "codes_02 holds a null code"),
    "a null row": (_null_row, 7, "codes_00 is null"),
    "num_frames one more": (_set("num_frames", 8, 10), 8, "codes_00 holds 9 codes, its num_frames is 10"),
    "levels of another file": (_set("levels", 9, 2), 9, "levels is 2, the file's metadata says 3"),
    "a row of another model": (_set("model_id", 4, "model-y"), 4, "model_id is 'model-y'"),
    "a null num_frames": (_set("num_frames", 2, None), 2, "num_frames is null"),
}


@pytest.fixture
def good_table(tmp_path) -> pa.Table:
    return pq.read_table(write_files(tmp_path / "good", files=1, rows=10, group=4)[0])


@pytest.mark.parametrize("case", ROW_CASES)
def test_every_reader_refuses_a_bad_row_naming_the_file_and_the_row(case, good_table, tmp_path):
    edit, row, what = ROW_CASES[case]
    path = tmp_path / "bad.parquet"
    pq.write_table(edit(good_table), path, row_group_size=4)
    assert file_info(path)["num_rows"] == 10  # the footer is fine: the rows are checked as they are read
    message = f"^{re.escape(str(path))}: row {row} \\('f0-r{row:02d}'\\), in row group {row // 4}: {what}"
    with pytest.raises(TokenFileError, match=message):
        list(iter_tokens([path]))
    with pytest.raises(TokenFileError, match=message):
        read_row_group(path, row // 4)
    with pytest.raises(TokenFileError, match=message):
        list(TokenDataset([path], shuffle=False))
    with pytest.raises(TokenFileError, match=f"^{re.escape(str(path))}: row {row}(, | )"):
        list(iter_tokens([path], columns=["text"]))  # without the ids the row is named by its index alone
    for group in {0, 1, 2} - {row // 4}:  # the other row groups read as they are
        assert len(read_row_group(path, group)) == [4, 4, 2][group]


def _drop(name: str) -> Callable[[pa.Table], pa.Table]:
    return lambda table: table.drop_columns([name])


def _metadata(key: str, value: str | None) -> Callable[[pa.Table], pa.Table]:
    def edit(table: pa.Table) -> pa.Table:
        metadata = {k: v for k, v in table.schema.metadata.items() if k != key.encode()}
        return table.replace_schema_metadata(metadata if value is None else {**metadata, key: value})

    return edit


def _retype(table: pa.Table) -> pa.Table:
    column = table.column("codes_00").cast(pa.list_(pa.int32()))
    return table.set_column(table.schema.get_field_index("codes_00"), "codes_00", column)


FILE_CASES = {
    "no num_frames column": (_drop("num_frames"), "column 'num_frames' is missing"),
    "no model_id column": (_drop("model_id"), "column 'model_id' is missing"),
    "no last level": (_drop("codes_02"), "column 'codes_02' is missing"),
    "codes of int32": (_retype, "column 'codes_00' is list<.*int32>, expected list<int16>"),
    "no codebook size": (_metadata("telucodec.codebook_size", None), "'telucodec.codebook_size' is missing"),
    "a codebook size of 0": (_metadata("telucodec.codebook_size", "0"), "codebook_size = 0 is outside"),
    "levels that are not a number": (_metadata("telucodec.levels", "three"), "levels = 'three' is not an integer"),
    "no model id": (_metadata("telucodec.model_id", None), "'telucodec.model_id' is missing"),
}


@pytest.mark.parametrize("case", FILE_CASES)
def test_every_reader_refuses_a_bad_footer_naming_the_file(case, good_table, tmp_path):
    edit, what = FILE_CASES[case]
    path = tmp_path / "bad.parquet"
    pq.write_table(edit(good_table), path, row_group_size=4)
    message = f"^{re.escape(str(path))}: .*{what}"
    for read in (
        file_info,
        lambda p: read_row_group(p, 0),
        lambda p: list(iter_tokens([p])),
        lambda p: TokenDataset([p]),
    ):
        with pytest.raises(TokenFileError, match=message):
            read(path)


def test_a_file_that_is_not_parquet_or_not_there_is_refused_naming_it(tmp_path):
    path = tmp_path / "part-00000.parquet"
    for content in (b"", b"not a parquet file", b"PAR1" + bytes(100) + b"PAR1"):
        path.write_bytes(content)
        for read in (file_info, lambda p: list(iter_tokens([p])), lambda p: TokenDataset([p])):
            with pytest.raises(TokenFileError, match=f"^{re.escape(str(path))}: not a readable Parquet file"):
                read(path)
    with pytest.raises(TokenFileError, match=f"^{re.escape(str(tmp_path / 'missing.parquet'))}: "):
        file_info(tmp_path / "missing.parquet")


@pytest.mark.parametrize(
    ("key", "other"), [("model_id", {"model_id": "model-y"}), ("codebook_size", {"codebook_size": 8192})]
)
def test_files_of_different_models_are_not_read_together(key, other, tmp_path):
    first = write_files(tmp_path / "a", files=1)[0]
    second = write_files(tmp_path / "b", files=1, **other)[0]  # type: ignore[arg-type]
    both = f"^{re.escape(str(second))}: {key} .*{re.escape(str(first))}"
    with pytest.raises(TokenFileError, match=both):
        list(iter_tokens([first, second]))
    with pytest.raises(TokenFileError, match=both):
        TokenDataset([first, second])
    assert len(list(iter_tokens([second]))) == 10  # each alone is fine


def _thrift(fields: dict[int, tuple[int, object]]) -> bytes:
    """A Thrift compact struct of ``{field id: (type, value)}``: i32 (5), binary (8), struct (12), bools (1, 2)."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes(out + bytes([n]))

    out, last = bytearray(), 0
    for field in sorted(fields):
        kind, value = fields[field]
        out += bytes([(field - last) << 4 | kind]) if 0 < field - last <= 15 else bytes([kind]) + varint(field * 2)
        last = field
        if kind == 5:
            out += varint((value << 1) ^ (value >> 63))  # type: ignore[operator]
        elif kind == 8:
            out += varint(len(value)) + value  # type: ignore[arg-type, operator]
        elif kind == 12:
            out += _thrift(value)  # type: ignore[arg-type]
    return bytes(out + b"\0")


def lying_page_header(path: Path, column: str, decoded: int, values: int | None = None) -> bytes:
    """The bytes of token file ``path`` with the first data page of ``column`` (row group 0) rewritten to declare
    ``decoded`` bytes (and ``values`` values), its length kept (a padding field makes up the difference)."""
    data = bytearray(path.read_bytes())
    ((start, length),) = tokens._read_footer(path).ranges[column][0].tolist()
    pos = start
    while True:  # to the first data page
        used, _, stored, count = tokens._page_header(bytes(data[pos : pos + 4096]))
        t = tokens._Thrift(bytes(data[pos : pos + used]))
        field, kind = next(t.fields())
        if field == 1 and t.integer(kind) == 0:  # the page type: DATA_PAGE
            break
        pos += used + stored
    fields = {
        1: (5, 0),
        2: (5, decoded),
        3: (5, stored),
        5: (12, {1: (5, count if values is None else values), 2: (5, 8), 3: (5, 3), 4: (5, 3)}),
    }
    short = len(_thrift(fields))
    assert used - short >= 4, "no room for the padding field"
    fields[100] = (8, bytes(used - short - 4))
    header_bytes = _thrift(fields)
    assert len(header_bytes) == used
    data[pos : pos + used] = header_bytes
    return bytes(data)


def test_a_page_that_declares_a_gigabyte_is_refused_before_anything_is_allocated(tmp_path):
    path = write_files(tmp_path, files=1)[0]
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(lying_page_header(path, "id", decoded=2**30))
    pool = pa.default_memory_pool()
    peak, allocated = pool.max_memory(), pool.bytes_allocated()
    with pytest.raises(TokenFileError, match=f"^{re.escape(str(bad))}: row group 0, column 'id': pages of more than"):
        list(iter_tokens([bad]))
    # pyarrow would allocate the gigabyte the header declares before finding the page short.
    assert pool.max_memory() == peak or pool.max_memory() - allocated < 2**28


def test_padding_is_a_value_no_code_can_take(tmp_path):
    rows = list(TokenDataset(write_files(tmp_path, files=1, rows=3), shuffle=False))
    batch = collate_tokens(rows)
    assert (batch["codes"][0, :, 1:] == -1).all() and (batch["codes"][2] >= 0).all()
    for pad in (0, 5, K):
        with pytest.raises(ValueError, match=f"pad {pad} could be a code"):
            collate_tokens(rows, pad=pad)


def test_the_writer_refuses_codes_outside_the_codebook(tmp_path):
    with TokenWriter(tmp_path / "x.parquet", 2, "m", 4, codebook_size=8) as writer:
        for codes in (np.array([[0, 8], [1, 2]]), np.array([[0, 1], [-1, 2]])):
            with pytest.raises(ValueError, match="outside \\[0, 8\\)"):
                writer.add(TokenRow("a", "a", None, None, None, "train", 640, 16000, 50.0, codes))
    with pytest.raises(ValueError, match="codebook_size"):
        TokenWriter(tmp_path / "y.parquet", 2, "m", 4, codebook_size=2**15 + 1)


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
