"""The `synth` stage CLI: params in, ULCA corpus and one summary line out; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pipeline.synth import main


def _tiny_params(repo_root: str, tmp_path: Path, sentences: Path) -> Path:
    data = yaml.safe_load(Path(repo_root, "params.yaml").read_text(encoding="utf-8"))
    data["synth"]["sentences"] = str(sentences)
    data["synth"]["sentences_per_speaker"] = 2
    data["synth"]["speakers"] = data["synth"]["speakers"][:2]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_cli_writes_corpus_and_summary(repo_root, tmp_path, capsys):
    sentences = tmp_path / "s.txt"
    sentences.write_text("# test\nనమస్కారం అండీ.\nమీరు ఎలా ఉన్నారు?\nచాలా బాగుంది.\n", encoding="utf-8")
    params = _tiny_params(repo_root, tmp_path, sentences)
    out = tmp_path / "corpus"
    assert main(["--out", str(out), "--params", str(params), "--workers", "1"]) == 0
    summary = capsys.readouterr().out
    assert "4 utterances, 2 speakers" in summary
    rows = json.loads((out / "data.json").read_text(encoding="utf-8"))
    assert len(rows) == 4 and all((out / r["audioFilename"]).is_file() for r in rows)


def test_cli_reports_missing_sentence_file(repo_root, tmp_path, capsys):
    params = _tiny_params(repo_root, tmp_path, tmp_path / "absent.txt")
    assert main(["--out", str(tmp_path / "corpus"), "--params", str(params)]) == 1
    err = capsys.readouterr().err
    assert "error: synth:" in err and "absent.txt" in err
    assert not (tmp_path / "corpus").exists()
