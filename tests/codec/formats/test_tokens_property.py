"""Property-based tests of the token-file readers (`iter_tokens`, `TokenDataset`, `read_row_group`): whatever the
bytes of a file, they yield exactly the rows a correct reader gives or raise `TokenFileError` naming the file, and
never allocate beyond the bounds the module documents.

The correct reader here is a plain per-row Python check of the documented rules. Three kinds of input: tables of
the token schema with random lengths, values, nulls and per-row columns (the readers must agree with it exactly,
refusing a bad file and reading a good one); a good file with random bytes overwritten (a refusal is always
allowed, rows must then equal what the correct reader makes of the same bytes); a good file whose page headers
declare random sizes. The bounds are made small for these files, and the peak of pyarrow's memory pool checked
around each read.
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from codec.formats import tokens
from codec.formats.tokens import TokenDataset, TokenFileError, TokenRow, TokenWriter, iter_tokens, read_row_group
from tests.codec.formats.test_tokens import lying_page_header

_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COLUMNS = ["id", "text", "num_frames"]
MODEL = "model-p"
# Small bounds for small files: a page or chunk that declares more is refused before pyarrow reads it.
BOUNDS = {"MAX_GROUP_ROWS": 64, "MAX_CHUNK_BYTES": 1 << 16, "MAX_CHUNK_VALUES": 1 << 12}
ALLOCATION_BOUND = 16 << 20  # pyarrow's pool may grow by this much at most while a file is read


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("token-property")


def _rows_of(read: Any) -> list[tuple[Any, ...]]:
    return [(r["id"], r["text"], r["num_frames"], r["codes"].tolist()) for r in read]


def read_everywhere(path: Path, levels: int | list[int] | None = None) -> list[tuple[Any, ...]] | TokenFileError:
    """The rows every reader gives (they must agree), or the TokenFileError every one raises; with the small bounds,
    and pyarrow's allocations checked."""
    pool = pa.default_memory_pool()
    peak, allocated = pool.max_memory(), pool.bytes_allocated()
    outcomes: list[Any] = []
    with mock.patch.multiple(tokens, **BOUNDS):
        for read in (
            lambda: _rows_of(iter_tokens([path], levels, columns=COLUMNS)),
            lambda: _rows_of(TokenDataset([path], levels, columns=COLUMNS, shuffle=False)),
            lambda: [
                row
                for group in range(tokens.file_info(path)["num_row_groups"])
                for row in _rows_of(read_row_group(path, group, levels, columns=COLUMNS))
            ],
        ):
            try:
                outcomes.append(read())
            except TokenFileError as exc:
                assert str(exc).startswith(f"{path}: "), exc
                outcomes.append(exc)
    # A new peak of the pool (the only kind that can be seen) lies within the bound of what was allocated before.
    assert pool.max_memory() == peak or pool.max_memory() - allocated <= ALLOCATION_BOUND
    if isinstance(outcomes[0], TokenFileError):
        assert all(isinstance(o, TokenFileError) for o in outcomes), outcomes
        event("refused: " + re.sub(r"[0-9]+", "N", str(outcomes[0]).removeprefix(f"{path}: "))[:60])
        return outcomes[0]
    event("read")
    assert outcomes[1] == outcomes[0] and outcomes[2] == outcomes[0]
    return outcomes[0]


def correct_rows(table: dict[str, list[Any]], levels: int, size: int, chosen: list[int]) -> tuple[list, set[int]]:
    """What a correct reader gives for a table (``{column: values}``): its rows, and the rows that break a rule
    (nulls, a ``levels`` or ``model_id`` of another file, a read level whose list is not ``num_frames`` long or holds a
    code outside ``[0, K)``)."""
    rows, bad = [], set()
    for i in range(len(table["id"])):
        frames = table["num_frames"][i]
        codes = [table[tokens.level_column(level)][i] for level in chosen]
        if (
            frames is None
            or table["levels"][i] != levels
            or table["model_id"][i] != MODEL
            or any(c is None or len(c) != frames or any(v is None or not 0 <= v < size for v in c) for c in codes)
        ):
            bad.add(i)
        rows.append((table["id"][i], table["text"][i], frames, codes))
    return rows, bad


def correct_rows_of_file(path: Path, levels: int | list[int] | None) -> list | None:
    """The same rules applied to whatever pyarrow reads from a file (None: a bad file)."""
    try:
        meta = pq.read_metadata(path)
        kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
        if kv["telucodec.tokens.schema_version"] != "2" or kv["telucodec.model_id"] != MODEL:
            return None
        count, size = int(kv["telucodec.levels"]), int(kv["telucodec.codebook_size"])
        chosen = list(range(count)) if levels is None else list(range(levels)) if isinstance(levels, int) else levels
        names = [*COLUMNS, "levels", "model_id", *(tokens.level_column(level) for level in chosen)]
        with pq.ParquetFile(path) as f:
            tables = [f.read_row_group(g, columns=names) for g in range(f.num_row_groups)]
        table = pa.concat_tables(tables) if tables else None
        if table is None:
            return []
        table.validate(full=True)
        columns = {name: table.column(name).to_pylist() for name in names}
        types = {name: table.schema.field(name).type for name in names}
        if types["num_frames"] != pa.int32() or types["levels"] != pa.int16() or types["id"] != pa.string():
            return None
        rows, bad = correct_rows(columns, count, size, chosen)
    except Exception:  # whatever pyarrow or the rules cannot read is a bad file
        return None
    return None if bad else rows


# ------------------------------------------------------------------------------ random token tables

DEFECTS = ["longer", "shorter", "value", "null value", "null row", "num_frames", "null num_frames", "levels", "model"]


@st.composite
def token_tables(draw: st.DrawFn) -> dict[str, Any]:
    levels, size, n = draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(0, 7))
    frames = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    code_lists = st.integers(0, size - 1)
    table: dict[str, list[Any]] = {
        "id": [f"u{i}" for i in range(n)],
        "text": draw(st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=n, max_size=n)),
        "num_frames": list(frames),
        "levels": [levels] * n,
        "model_id": [MODEL] * n,
    }
    for level in range(levels):
        table[tokens.level_column(level)] = [draw(st.lists(code_lists, min_size=f, max_size=f)) for f in frames]
    odd = st.sampled_from([-(2**15), -2, -1, size, size + 1, 2**15 - 1])
    for kind, row, level, value in (
        draw(st.lists(st.tuples(st.sampled_from(DEFECTS), st.integers(0, 99), st.integers(0, 2), odd), max_size=2))
        if n
        else []
    ):
        row, name = row % n, tokens.level_column(level % levels)
        codes = table[name][row]
        if kind == "longer" and codes is not None:
            table[name][row] = [*codes, 0]
        elif kind == "shorter" and codes:
            table[name][row] = codes[:-1]
        elif kind in ("value", "null value") and codes is not None:
            table[name][row] = [value if kind == "value" else None, *codes[1:]]
        elif kind == "null row":
            table[name][row] = None
        elif kind == "num_frames" and table["num_frames"][row] is not None:
            table["num_frames"][row] += 1
        elif kind == "null num_frames":
            table["num_frames"][row] = None
        elif kind == "levels":
            table["levels"][row] = levels + 1
        elif kind == "model":
            table["model_id"][row] = "model-q"
    chosen = draw(
        st.one_of(
            st.none(),
            st.integers(1, levels),
            st.lists(st.integers(0, levels - 1), min_size=1, max_size=levels, unique=True),
        )
    )
    return {
        "table": table,
        "levels": levels,
        "size": size,
        "group": draw(st.integers(1, 4)),
        "dictionary": draw(st.booleans()),
        "chosen": chosen,
    }


def write_table(path: Path, spec: dict[str, Any]) -> None:
    schema = tokens.token_schema(spec["levels"], MODEL, spec["size"])
    if not spec["dictionary"]:
        schema = schema.set(schema.get_field_index("model_id"), pa.field("model_id", pa.string()))
    schema = pa.schema([field.with_nullable(True) for field in schema], metadata=schema.metadata)  # nulls allowed
    n = len(spec["table"]["id"])
    values = {
        **{name: [None] * n for name in tokens.META_COLUMNS},
        "split": ["train"] * n,
        "num_samples": [320] * n,
        "sample_rate": [16000] * n,
        "frame_rate": [50.0] * n,
        **spec["table"],
    }
    arrays = []
    for field in schema:
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        array = pa.array(values[field.name], kind)
        arrays.append(array.dictionary_encode().cast(field.type) if pa.types.is_dictionary(field.type) else array)
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path, row_group_size=spec["group"])


@_FUZZ
@given(token_tables())
def test_random_token_tables_read_as_the_correct_reader_says(folder, spec):
    path = folder / "table.parquet"
    write_table(path, spec)
    chosen = spec["chosen"]
    levels = (
        list(range(spec["levels"])) if chosen is None else list(range(chosen)) if isinstance(chosen, int) else chosen
    )
    expected, bad = correct_rows(spec["table"], spec["levels"], spec["size"], levels)
    outcome = read_everywhere(path, chosen)
    if not bad:
        assert outcome == expected
        return
    assert isinstance(outcome, TokenFileError), f"rows {sorted(bad)} are bad, yet the readers read them"
    named = re.match(rf"{re.escape(str(path))}: row (\d+)", str(outcome))
    assert named and int(named.group(1)) in bad, outcome  # the row it names is a bad one


# --------------------------------------------------------------------------------- mutated files


@functools.cache
def good_file() -> tuple[bytes, int]:
    """A good token file (7 rows of 3 levels, K = 16, row groups of 3) and where its footer starts."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "good.parquet"
        with TokenWriter(path, 3, MODEL, 3, codebook_size=16) as writer:
            for r in range(7):
                codes = [[(r + level + i) % 16 for i in range(r % 4 + 1)] for level in range(3)]
                array = np.asarray(codes, dtype=np.int16)
                writer.add(
                    TokenRow(f"r{r}", "u", "spk", None, f"t{r}", "train", 320 * array.shape[1], 16000, 50.0, array)
                )
        data = path.read_bytes()
    return data, len(data) - 8 - int.from_bytes(data[-8:-4], "little")


@_FUZZ
@given(
    st.sampled_from(["anywhere", "pages", "footer"]),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 40),
)
def test_mutated_files_are_refused_or_read_as_the_correct_reader_says(folder, where, edits, cut):
    data, footer = good_file()
    low, high = {"anywhere": (0, len(data)), "pages": (4, footer), "footer": (footer, len(data) - 8)}[where]
    mutated = bytearray(data)
    for position, value in edits:
        mutated[low + position % (high - low)] = value
    path = folder / "mutated.parquet"
    path.write_bytes(bytes(mutated[: len(mutated) - cut] if cut > 30 else mutated))  # sometimes cut short too
    outcome = read_everywhere(path)
    if not isinstance(outcome, TokenFileError):
        assert outcome == correct_rows_of_file(path, None)


@pytest.fixture(scope="module")
def file_with_page_statistics(folder) -> Path:
    """The good file rewritten with statistics in every page header, which leaves room to rewrite a header to
    any sizes at the same length."""
    good = folder / "good.parquet"
    good.write_bytes(good_file()[0])
    path = folder / "statistics.parquet"
    pq.write_table(pq.read_table(good), path, row_group_size=3, compression="zstd", write_statistics=True)
    return path


@_FUZZ
@given(
    st.sampled_from(["id", "text", "num_frames", "model_id", "codes_00", "codes_02"]),
    st.one_of(st.integers(0, 1 << 12), st.integers(0, 2**31 - 1)),
    st.one_of(st.none(), st.integers(0, 1 << 10), st.integers(0, 2**31 - 1)),
)
def test_page_headers_declaring_any_size_are_refused_or_read_right(
    folder, file_with_page_statistics, column, decoded, values
):
    path = folder / "lying.parquet"
    path.write_bytes(lying_page_header(file_with_page_statistics, column, decoded, values))
    outcome = read_everywhere(path)
    if not isinstance(outcome, TokenFileError):
        assert outcome == correct_rows_of_file(path, None)


@_FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_are_refused(folder, data, framed):
    path = folder / "random.parquet"
    path.write_bytes(b"PAR1" + data + b"PAR1" if framed else data)
    assert isinstance(read_everywhere(path), TokenFileError)
