"""codec/train/resume.py: the resume policy, one test per case of its docstring (no training needed)."""

from pathlib import Path

from codec.train import checkpoint as ckpt
from codec.train.fingerprint import RunFingerprint
from codec.train.resume import resume_point

RUN = RunFingerprint(
    {
        "train params": "a",
        "loss params": "b",
        "seed": "c",
        "init weights": "d",
        "shards": "e",
        "code": "f",
        "torch": "g",
    }
)


def _write(folder: Path, step: int, fingerprint: RunFingerprint | None = RUN, history: bool = True) -> Path:
    state = {"step": step, "log_history": [(step, {"valid/snr_db": 1.0})]} if history else {"step": step}
    if fingerprint is not None:
        state.update(fingerprint=fingerprint.digest, fingerprint_parts=fingerprint.parts)
    return ckpt.save_checkpoint(ckpt.checkpoint_path(folder, step), state)


def test_1_no_checkpoint_starts_afresh(tmp_path):
    assert resume_point(tmp_path / "none", RUN) is None
    assert resume_point(tmp_path, RUN) is None


def test_2_unloadable_latest_is_set_aside_and_the_one_before_is_used(tmp_path, capsys):
    _write(tmp_path, 2)
    bad = _write(tmp_path, 4)
    bad.write_bytes(bad.read_bytes()[:100])
    ckpt.checkpoint_path(tmp_path, 6).mkdir()
    point = resume_point(tmp_path, RUN)
    assert point is not None and point.path.name == "step-00000002.pt" and point.state["step"] == 2
    err = capsys.readouterr().err
    assert "step-00000004.pt is unusable" in err and "step-00000006.pt is unusable (a folder" in err
    assert sorted(p.name for p in (tmp_path / ckpt.UNUSABLE_DIR).iterdir()) == ["step-00000004.pt", "step-00000006.pt"]


def test_3_this_runs_checkpoint_is_resumed_even_when_finished(tmp_path, capsys):
    _write(tmp_path, 2)
    _write(tmp_path, 4)  # the last step: a finished run, replayed
    point = resume_point(tmp_path, RUN)
    assert point.path.name == "step-00000004.pt" and point.state["step"] == 4
    assert capsys.readouterr().err == "" and not (tmp_path / ckpt.STALE_DIR).exists()


def test_4_another_runs_checkpoints_are_set_aside_naming_what_differs(tmp_path, capsys):
    other = RunFingerprint({**RUN.parts, "code": "changed", "seed": "changed"})
    _write(tmp_path, 2, other)
    ckpt.save_checkpoint(tmp_path / ckpt.BEST_NAME, {"step": 2})
    assert resume_point(tmp_path, RUN) is None
    err = capsys.readouterr().err
    assert (
        "not resuming from" in err and "it was written with other seed and code than this run's; starting afresh" in err
    )
    assert sorted(p.name for p in (tmp_path / ckpt.STALE_DIR).iterdir()) == ["best.pt", "step-00000002.pt"]
    assert ckpt.list_checkpoints(tmp_path) == []


def test_5_a_checkpoint_of_an_older_version_is_set_aside(tmp_path, capsys):
    _write(tmp_path, 2, fingerprint=None)
    assert resume_point(tmp_path, RUN) is None
    assert "written by an older version" in capsys.readouterr().err
    _write(tmp_path, 2, history=False)  # fingerprint matches, but no log history to replay
    assert resume_point(tmp_path, RUN) is None
    assert "written by an older version" in capsys.readouterr().err
