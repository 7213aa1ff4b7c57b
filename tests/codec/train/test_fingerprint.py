"""codec/train/fingerprint.py: what makes two training runs the same run."""

import dataclasses
import shutil
from pathlib import Path

from codec.config.loss import LossConfig
from codec.config.train import TrainConfig
from codec.train.fingerprint import CODE_ROOT, code_digest, run_fingerprint


def _files(tmp_path):
    (tmp_path / "init.safetensors").write_bytes(b"weights")
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.json").write_text("{}")
    return tmp_path / "init.safetensors", tmp_path / "shards"


def test_equal_runs_match_and_each_change_is_named(tmp_path):
    init, shards = _files(tmp_path)
    train, loss = TrainConfig(), LossConfig()
    base = run_fingerprint(train, loss, 0, init, shards)
    assert base == run_fingerprint(TrainConfig(), LossConfig(), 0, init, shards)
    assert base.changed(base.parts) == [] and len(base.digest) == 64

    assert base.changed(
        run_fingerprint(dataclasses.replace(train, steps=train.steps + 1), loss, 0, init, shards).parts
    ) == ["train params"]
    assert base.changed(
        run_fingerprint(train, dataclasses.replace(loss, mel_weight=loss.mel_weight + 1), 0, init, shards).parts
    ) == ["loss params"]
    assert base.changed(run_fingerprint(train, loss, 1, init, shards).parts) == ["seed"]
    init.write_bytes(b"other weights")
    (shards / "manifest.json").write_text('{"files": []}')
    assert base.changed(run_fingerprint(train, loss, 0, init, shards).parts) == ["init weights", "shards"]
    assert base.changed(None) == list(base.parts)  # a checkpoint without parts: everything is unknown


def test_settings_that_do_not_change_the_weights_are_left_out(tmp_path):
    init, shards = _files(tmp_path)
    train = TrainConfig()
    operational = dataclasses.replace(
        train,
        num_workers=train.num_workers + 3,
        log_every=train.log_every + 1,
        checkpoint_every=train.checkpoint_every + 1,
        device="cpu",
    )
    assert run_fingerprint(train, LossConfig(), 0, init, shards) == run_fingerprint(
        operational, LossConfig(), 0, init, shards
    )


def test_code_digest_follows_every_python_file_of_the_package(tmp_path):
    code = tmp_path / "codec"
    shutil.copytree(CODE_ROOT, code, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_digest(code) == code_digest(CODE_ROOT)
    (code / "__pycache__").mkdir(exist_ok=True)
    (code / "__pycache__" / "x.pyc").write_bytes(b"bytecode")  # not source: no change
    (code / "notes.txt").write_text("not code")
    assert code_digest(code) == code_digest(CODE_ROOT)
    edited = code / "train" / "schedule.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert code_digest(code) != code_digest(CODE_ROOT)
    init, shards = _files(tmp_path)
    fp = run_fingerprint(TrainConfig(), LossConfig(), 0, init, shards)
    assert fp.changed(run_fingerprint(TrainConfig(), LossConfig(), 0, init, shards, code_root=code).parts) == ["code"]
    moved = tmp_path / "elsewhere" / "codec"  # the same files in another checkout: the same code
    shutil.copytree(CODE_ROOT, moved, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_digest(moved) == code_digest(CODE_ROOT)
    assert Path(CODE_ROOT).name == "codec"
