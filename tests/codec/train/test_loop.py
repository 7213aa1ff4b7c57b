"""End-to-end CPU runs of the trainer on the tiny codec: learning, exact resume, determinism, guard."""

import math
import os
import shutil
import signal

import pytest
import torch

from codec.formats.weights import load_codec, read_codec_weights
from codec.runtime.interrupts import Terminated
from codec.train import checkpoint as ckpt
from codec.train.loop import TrainingDiverged, read_time_ledger, run_seconds, timings_dict


class Recorder:
    """A MetricsLogger that keeps everything in memory."""

    def __init__(self):
        self.step, self.rows = 0, {}

    def log_metric(self, name, val):
        self.rows.setdefault(self.step, {})[name] = val

    def next_step(self):
        self.step += 1


class Killed(Exception):
    pass


def _assert_same(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), where


def _final_state(folder, step):
    return ckpt.load_checkpoint(ckpt.checkpoint_path(folder, step))


def test_training_lowers_the_validation_loss_and_writes_outputs(tiny):
    log = Recorder()
    cfg = tiny.train(steps=16, validate_every=4, checkpoint_every=8)
    result = tiny.run(cfg, logger=log, out=tiny.path / "codec.safetensors", summary_path=tiny.path / "summary.json")
    valid = [row["valid/loss/total"] for _, row in sorted(log.rows.items()) if "valid/loss/total" in row]
    assert len(valid) == 4 and valid[-1] < valid[0] - 0.1, valid
    assert result.step == 16 and result.bad_steps == 0
    assert {
        "valid/snr_db",
        "valid/si_snr_db",
        "valid/mel_distance",
        "valid/range_ratio",
        "valid/vq/perplexity/00",
        "valid/vq/used_fraction/01",
        "train/loss/total",
        "train/lr",
    } <= set(log.rows[16])
    assert set(log.rows) == set(range(1, 17))  # log_every=1
    folder = tiny.path / "run" / "checkpoints"
    assert [s for s, _ in ckpt.list_checkpoints(folder)] == [8, 16] and (folder / ckpt.BEST_NAME).is_file()
    # The exported weights are the best validation step's, with the config to rebuild the codec.
    _, config, meta = read_codec_weights(result.output)
    assert meta["weights"] == "best" and int(meta["step"]) == result.best_step
    best = ckpt.load_checkpoint(folder / ckpt.BEST_NAME)
    _assert_same(load_codec(result.output).state_dict(), best["codec"])
    assert best["best"]["value"] == max(row["valid/snr_db"] for row in log.rows.values() if "valid/snr_db" in row)
    assert (tiny.path / "summary.json").is_file()


def test_the_checkpoint_state_is_built_only_for_the_steps_that_write_one(tiny, monkeypatch):
    # On CUDA the state is a host copy of every weight: built at every step, it took 3/4 of an H200 step.
    import codec.train.loop as loop

    built = []
    real = loop.checkpoint_state

    def counting(parts, run, *args, **kwargs):
        built.append(run.step)
        return real(parts, run, *args, **kwargs)

    monkeypatch.setattr(loop, "checkpoint_state", counting)
    tiny.run(tiny.train(steps=9, validate_every=6, checkpoint_every=4))
    # Checkpoints at 4, 8 and the last step (9); step 6's validation, the first, is a best; no other step writes.
    assert built == [4, 6, 8, 9]


def test_throughput_counts_whole_iterations_but_not_validation(tiny, monkeypatch):
    # Time the host spends outside the step (here a slow logger) is training time; validation is not.
    import time

    import codec.train.loop as loop

    class SlowLogger(Recorder):
        def next_step(self):
            time.sleep(0.05)
            super().next_step()

    real_validate = loop.validate

    def slow_validate(*args, **kwargs):
        time.sleep(1.5)
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(loop, "validate", slow_validate)
    cfg = tiny.train(steps=6, validate_every=3, checkpoint_every=6)
    result = tiny.run(cfg, logger=SlowLogger())
    timed_seconds = 5 * cfg.batch_size / result.examples_per_second  # steps 2..6 (the first is warm-up)
    assert 5 * 0.05 <= timed_seconds < 1.5, timed_seconds


def test_killed_and_resumed_run_ends_bit_identical(tiny):
    cfg = tiny.train(steps=7, checkpoint_every=2, validate_every=3)
    loss = tiny.loss(adversarial_start_step=3)  # the discriminator and its optimizer are in the state too
    straight_log, resumed_log = Recorder(), Recorder()
    ledger = tiny.path / "resumed" / "timings.json"
    straight = tiny.run(cfg, loss, name="straight", logger=straight_log, time_ledger=tiny.path / "straight.json")

    def kill_at_5(step, batch):
        if step == 5:
            raise Killed  # after step-00000004.pt was written, before step 6
        return batch

    with pytest.raises(Killed):
        tiny.run(cfg, loss, name="resumed", batch_hook=kill_at_5, logger=Recorder(), time_ledger=ledger)
    folder = tiny.path / "resumed" / "checkpoints"
    assert ckpt.latest_checkpoint(folder).name == "step-00000004.pt"
    # The killed session's seconds to each checkpoint, in the ledger (not in the checkpoints: they rebuild
    # byte for byte, see test_two_runs_with_the_same_seed_are_identical...)
    seconds_to_4 = read_time_ledger(ledger, ckpt.load_checkpoint(folder / "step-00000004.pt")["fingerprint"])["4"]
    assert seconds_to_4 > 0
    # Resume with a data-loader worker process this time: the data must not depend on it.
    resumed = tiny.run(
        tiny.train(steps=7, checkpoint_every=2, validate_every=3, num_workers=1),
        loss,
        name="resumed",
        logger=resumed_log,
        time_ledger=ledger,
    )
    assert resumed.resumed_from == 4 and resumed.step == 7
    # The run's seconds span its sessions: the checkpoint's to step 4, then this session's (the killed session's
    # step 5, done again, is not counted); one session's run: its own.
    assert resumed.total_seconds == pytest.approx(seconds_to_4 + resumed.seconds)
    assert straight.total_seconds == straight.seconds
    assert run_seconds(timings_dict(resumed)) == resumed.total_seconds  # what ship_pretrained and recipe_budget read
    assert run_seconds({**timings_dict(resumed), "total_seconds": None}) == resumed.seconds  # not on record
    # The logs too: steps 1-4 replayed from the checkpoint, then 5-7 as they come (a fresh logger, as
    # under DVC, which deletes a crashed stage's logs but keeps its persistent checkpoints).
    assert resumed_log.rows == straight_log.rows and sorted(resumed_log.rows) == list(range(1, 8))
    _assert_same(straight.model_state, resumed.model_state)
    a = _final_state(tiny.path / "straight" / "checkpoints", 7)
    b = _final_state(folder, 7)
    for key in (
        "codec",
        "discriminator",
        "optimizer",
        "disc_optimizer",
        "rng",
        "generators",
        "best",
        "guard",
        "log_history",
    ):
        _assert_same(a[key], b[key], key)


@pytest.mark.parametrize("signum, raised", [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_run_asked_to_stop_checkpoints_the_step_it_is_in_and_resumes_bit_identical(tiny, capsys, signum, raised):
    cfg = tiny.train(steps=7, checkpoint_every=4, validate_every=3)
    straight = tiny.run(cfg, name="straight")

    def signal_in_step_6(step, batch):
        if step == 5:  # a cluster's time limit or Ctrl-C while step 6 runs: it finishes, then the run stops
            os.kill(os.getpid(), signum)
        return batch

    before = signal.getsignal(signum)
    with pytest.raises(raised):
        tiny.run(cfg, name="stopped", batch_hook=signal_in_step_6)
    assert signal.getsignal(signum) is before
    folder = tiny.path / "stopped" / "checkpoints"
    assert [step for step, _ in ckpt.list_checkpoints(folder)] == [4, 6]  # 6: not periodic, written on the stop
    err = capsys.readouterr().err
    assert f"train: {signal.Signals(signum).name}: stopped after step 6 of 7; checkpoint " in err
    assert "step-00000006.pt: the same command resumes from it" in err
    resumed = tiny.run(cfg, name="stopped")
    assert resumed.resumed_from == 6 and resumed.step == 7
    _assert_same(straight.model_state, resumed.model_state)


def test_two_runs_with_the_same_seed_are_identical_and_other_seeds_differ(tiny):
    cfg = tiny.train(steps=4, checkpoint_every=4, validate_every=4)
    one = tiny.run(cfg, name="one")
    tiny.run(cfg, name="two")
    _assert_same(_final_state(tiny.path / "one" / "checkpoints", 4), _final_state(tiny.path / "two" / "checkpoints", 4))
    other = tiny.run(cfg, name="other", seed=8)
    assert not torch.equal(one.model_state["decoder.output_scale"], other.model_state["decoder.output_scale"])


def test_a_nan_batch_is_skipped_and_counted(tiny):
    def poison_step_2(step, batch):
        return batch * float("nan") if step == 2 else batch

    log = Recorder()
    result = tiny.run(tiny.train(steps=4, checkpoint_every=4, validate_every=4), logger=log, batch_hook=poison_step_2)
    assert result.bad_steps == 1 and result.step == 4
    assert 3 not in log.rows or "train/loss/total" not in log.rows[3]  # the skipped step logs no losses
    assert log.rows[4]["train/bad_steps"] == 1
    assert all(torch.isfinite(v).all() for v in result.model_state.values() if v.is_floating_point())
    assert math.isfinite(result.valid["snr_db"])


def test_a_run_of_nan_steps_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tiny):
    cfg = tiny.train(steps=10, checkpoint_every=2, validate_every=2, max_bad_steps=3)

    def poison_from_5th(step, batch):
        return batch * float("nan") if step >= 4 else batch

    message = r"steps 5\.\.7 \(3 in a row\).*non-finite.*last good checkpoint: .*step-00000006\.pt"
    with pytest.raises(TrainingDiverged, match=message):
        tiny.run(cfg, name="bad", batch_hook=poison_from_5th)
    folder = tiny.path / "bad" / "checkpoints"
    assert [s for s, _ in ckpt.list_checkpoints(folder)] == [4, 6]
    # Skipped steps change nothing: the checkpoint holds the weights and codebooks of step 4.
    last = ckpt.load_checkpoint(ckpt.checkpoint_path(folder, 6))

    def kill_at_5th(step, batch):
        if step == 4:
            raise Killed
        return batch

    with pytest.raises(Killed):
        tiny.run(cfg, name="clean", batch_hook=kill_at_5th)
    _assert_same(
        last["codec"], ckpt.load_checkpoint(ckpt.checkpoint_path(tiny.path / "clean" / "checkpoints", 4))["codec"]
    )


def test_checkpoints_of_another_run_are_set_aside(tiny, capsys):
    tiny.run(tiny.train(steps=2, checkpoint_every=2, validate_every=2), name="shared")
    result = tiny.run(tiny.train(steps=2, checkpoint_every=2, validate_every=2, batch_size=2), name="shared")
    assert result.resumed_from is None
    err = capsys.readouterr().err
    assert (
        "it was written with other train params than this run's; starting afresh" in err
    )  # says what changed, nothing else
    assert (tiny.path / "shared" / "checkpoints" / ckpt.STALE_DIR / "step-00000002.pt").is_file()


def test_a_checkpoint_without_a_log_history_is_set_aside(tiny, capsys):
    # Written by an older version: resuming from it could not rebuild the run's logs.
    cfg = tiny.train(steps=2, checkpoint_every=2, validate_every=2)
    tiny.run(cfg, name="old")
    path = ckpt.checkpoint_path(tiny.path / "old" / "checkpoints", 2)
    state = ckpt.load_checkpoint(path)
    del state["log_history"]
    ckpt.save_checkpoint(path, state)
    result = tiny.run(cfg, name="old")
    assert result.resumed_from is None and result.step == 2
    assert "older version" in capsys.readouterr().err
    assert (tiny.path / "old" / "checkpoints" / ckpt.STALE_DIR / "step-00000002.pt").is_file()


def test_a_corrupt_latest_checkpoint_is_set_aside_and_the_run_resumes_from_the_one_before(tiny, capsys):
    cfg = tiny.train(steps=4, checkpoint_every=2, validate_every=2)
    clean = tiny.run(cfg, name="clean")

    def kill_at_3(step, batch):
        if step == 3:
            raise Killed  # after step-00000002.pt was written
        return batch

    with pytest.raises(Killed):
        tiny.run(cfg, name="corrupt", batch_hook=kill_at_3)
    folder = tiny.path / "corrupt" / "checkpoints"
    # Steps 3 and 4 were written, then damaged: one truncated, one a folder where a file should be.
    shutil.copy(ckpt.checkpoint_path(folder, 2), ckpt.checkpoint_path(folder, 3))
    path = ckpt.checkpoint_path(folder, 3)
    path.write_bytes(path.read_bytes()[:1000])
    ckpt.checkpoint_path(folder, 4).mkdir()
    capsys.readouterr()
    result = tiny.run(cfg, name="corrupt")
    err = capsys.readouterr().err
    assert result.resumed_from == 2 and result.step == 4
    assert "step-00000003.pt is unusable (cannot load this checkpoint: truncated or corrupt" in err
    assert "step-00000004.pt is unusable (a folder named like a checkpoint)" in err
    assert sorted(p.name for p in (folder / ckpt.UNUSABLE_DIR).iterdir()) == ["step-00000003.pt", "step-00000004.pt"]
    _assert_same(_final_state(folder, 4)["codec"], _final_state(tiny.path / "clean" / "checkpoints", 4)["codec"])
    assert clean.step == 4


def test_best_metrics_are_the_ones_the_config_may_name():
    from typing import get_args, get_type_hints

    from codec.config.train import TrainConfig
    from codec.train.validation import BEST_METRICS

    assert set(get_args(get_type_hints(TrainConfig)["best_metric"])) == set(BEST_METRICS)
    assert BEST_METRICS["snr_db"].better(2.0, 1.0) and BEST_METRICS["mel_distance"].better(1.0, 2.0)


def test_torch_settings_are_put_back_after_the_run():
    from codec.train.loop import torch_settings

    before = (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision())
    torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = False, False
    try:
        with torch_settings(torch.device("cuda"), deterministic=True):  # only flags: no GPU needed
            assert torch.backends.cudnn.allow_tf32 and torch.backends.cudnn.benchmark
            assert torch.get_float32_matmul_precision() == "high"
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cudnn.benchmark
        assert torch.get_float32_matmul_precision() == before[2]
        with torch_settings(torch.device("cpu"), deterministic=True):
            assert torch.are_deterministic_algorithms_enabled()
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = before[0], before[1]
