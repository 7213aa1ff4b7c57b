import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from pipeline.prepare import main

SR_IN = 22050


def make_folder_corpus(root, good: int, bad: int):
    """``good`` 1 s noise clips in three speaker folders, ``bad`` files that are not audio."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(good):
        (root / f"spk{i % 3}").mkdir(exist_ok=True)
        sf.write(root / f"spk{i % 3}" / f"g{i}.wav", (0.2 * rng.standard_normal(SR_IN)).astype(np.float32), SR_IN)
    for i in range(bad):
        (root / f"bad{i}.wav").write_bytes(b"RIFF....WAVEjunk")
    return root


def cli(repo_root, corpus, out, *extra):
    args = [
        "--corpus-dir",
        str(corpus),
        "--out",
        str(out / "shards"),
        "--stats",
        str(out / "stats.json"),
        "--rejected",
        str(out / "rejected.csv"),
        "--params",
        f"{repo_root}/params.yaml",
        *extra,
    ]
    return [sys.executable, "-m", "pipeline.prepare", *args]


def test_cli_end_to_end_and_all_rejected_failure(tmp_path, repo_root):
    good = make_folder_corpus(tmp_path / "good", good=6, bad=1)
    bad = make_folder_corpus(tmp_path / "bad", good=0, bad=2)
    # Both runs at once: each interpreter start costs seconds (pipeline.params imports torch).
    runs = [
        subprocess.Popen(
            cli(repo_root, corpus, tmp_path / f"out_{corpus.name}"),
            cwd=repo_root,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for corpus in (good, bad)
    ]
    (ok_out, ok_err), (bad_out, bad_err) = (run.communicate(timeout=120) for run in runs)
    assert runs[0].returncode == 0, ok_err
    assert "train:" in ok_out and "rejected: 1" in ok_out
    stats = json.loads((tmp_path / "out_good" / "stats.json").read_text())
    assert stats["rejected"] == 1 and sum(s["utterances"] for s in stats["splits"].values()) == 6
    assert (tmp_path / "out_good" / "rejected.csv").read_text().splitlines()[1].startswith("bad0,bad0.wav,unreadable")
    assert (tmp_path / "out_good" / "shards" / "manifest.json").is_file()

    assert runs[1].returncode != 0
    assert "no usable audio" in bad_err and "all 2 files were rejected" in bad_err
    assert not (tmp_path / "out_bad" / "stats.json").exists()
    assert len((tmp_path / "out_bad" / "rejected.csv").read_text().splitlines()) == 3


def test_shard_jobs_then_merge_equal_the_one_shot_run(tmp_path, repo_root, capsys):
    corpus = make_folder_corpus(tmp_path / "corpus", good=6, bad=1)
    jobs = cli(repo_root, corpus, tmp_path / "jobs")[3:]
    for shard in range(2):
        main([*jobs, "--num-shards", "2", "--shard", str(shard)])
    assert "shards [1]: 1 files" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="run with 2 shards, not 3"):
        main([*jobs, "--num-shards", "3", "--merge"])
    main([*jobs, "--num-shards", "2", "--merge"])
    main([*cli(repo_root, corpus, tmp_path / "one")[3:], "--num-shards", "2"])
    manifest = lambda d: json.loads((tmp_path / d / "shards" / "manifest.json").read_text())  # noqa: E731
    assert manifest("jobs") == manifest("one") and manifest("one")["num_shards"] == 2


def test_cli_missing_corpus_and_bad_arguments(tmp_path, repo_root):
    with pytest.raises(SystemExit, match="does not exist"):
        main(cli(repo_root, tmp_path / "nowhere", tmp_path / "out")[3:])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--params", f"{repo_root}/params.yaml"])  # no --stats/--rejected
