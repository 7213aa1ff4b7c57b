"""codec.runtime.interrupts: SIGTERM and Ctrl-C unwind the stack (atomic writes clean up) and end with 143 / 130."""

from __future__ import annotations

import importlib
import os
import signal

import pytest

from codec.runtime.interrupts import Terminated, deferred_stop, exit_cleanly
from codec.runtime.io import atomic_path

STAGES = ["synth", "prepare", "seed_codebooks", "train", "export", "evaluate"]


def _writer(target, stop):
    @exit_cleanly("stage")
    def main():
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half of it")
            stop()
            tmp.write_bytes(b"all of it")  # never reached

    return main


def _sigterm():
    os.kill(os.getpid(), signal.SIGTERM)


def _ctrl_c():
    raise KeyboardInterrupt


@pytest.mark.parametrize("stop, status, word", [(_sigterm, 143, "terminated"), (_ctrl_c, 130, "interrupted")])
def test_a_stopped_command_removes_its_temporary_file_and_keeps_the_old_output(tmp_path, capsys, stop, status, word):
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous run")
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_:
        _writer(target, stop)()
    assert exit_.value.code == status
    assert capsys.readouterr().err == f"stage: {word}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"] and target.read_bytes() == b"previous run"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the command's only while it runs


def test_a_finished_command_is_untouched(tmp_path):
    @exit_cleanly("stage")
    def main(x):
        return x + 1

    assert main(1) == 2


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_entry_point_stops_cleanly(stage):
    main = importlib.import_module(f"pipeline.{stage}").main
    assert main.__wrapped__ is not None and main.__qualname__ == "main"
    assert "exit_cleanly" in main.__code__.co_qualname  # the wrapper's code, not the bare main


def test_a_deferred_stop_holds_the_first_signal_and_lets_a_second_act_at_once():
    before = signal.getsignal(signal.SIGINT)
    with deferred_stop() as stop:
        assert not stop.asked
        os.kill(os.getpid(), signal.SIGINT)  # held: the block goes on
        assert stop.asked and stop.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):  # the second: Python's own handler again
            os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            stop.stop()
    assert signal.getsignal(signal.SIGINT) is before


def test_a_deferred_sigterm_stops_as_terminated_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with deferred_stop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.name == "SIGTERM"
        with pytest.raises(Terminated):
            stop.stop()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    with deferred_stop() as stop:
        pass
    assert not stop.asked
