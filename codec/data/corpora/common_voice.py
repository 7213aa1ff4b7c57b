"""Mozilla Common Voice: ``validated.tsv`` (client_id, path, sentence, age, gender, ...) + ``clips/``.

``client_id`` is the (anonymised) speaker; gender spellings of every release are normalised.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

from codec.data.corpora.base import CorpusError, Utterance, normalize_gender

INDEX = "validated.tsv"
CLIPS = "clips"


def detect(root: Path) -> bool:
    return (root / INDEX).is_file()


def read(root: Path) -> list[Utterance]:
    index = root / INDEX
    try:
        with index.open(encoding="utf-8", newline="") as f:
            # Sentences contain quotes: CV's tsv is not quoted, so quoting must be off.
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorpusError(f"{index}: cannot read: {exc}") from None
    missing = {"client_id", "path"} - set(rows[0].keys() if rows else ())
    if rows and missing:
        raise CorpusError(f"{index}: missing column(s) {sorted(missing)}")
    utterances = []
    for row in rows:
        name = (row.get("path") or "").strip()
        if not name:
            continue
        utterances.append(
            Utterance(
                id=str(PurePosixPath(name).with_suffix("")),
                path=root / CLIPS / name,
                speaker=(row.get("client_id") or "").strip() or None,
                gender=normalize_gender(row.get("gender")),
                text=(row.get("sentence") or "").strip() or None,
                meta={k: v for k, v in row.items() if k in ("age", "accents", "locale", "variant") and v},
            )
        )
    return utterances
