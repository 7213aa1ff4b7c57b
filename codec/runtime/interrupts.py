"""Stop cleanly when asked: Ctrl-C (SIGINT) and SIGTERM (``timeout``, ``kill``, a cluster's time limit).

Python turns SIGINT into ``KeyboardInterrupt`` but dies on SIGTERM without unwinding, which would leave the
temporary file of an atomic write (``.<name>.<random>.tmp``) behind. :func:`exit_cleanly` raises
:class:`Terminated` on SIGTERM instead, so every ``with`` block unwinds (``codec.runtime.io.atomic_path`` removes
its temporary file; finished outputs are left as they were) and the command ends with one line on stderr
and the status a shell gives a process killed by the signal: 130 for SIGINT, 143 for SIGTERM.

A loop whose every pass must finish whole (a training step, then its checkpoint) holds the first signal
with :func:`deferred_stop` and stops where it loses nothing; a second signal acts at once.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM. A BaseException, like KeyboardInterrupt: ``except Exception``
    handlers (which turn bad input into messages) must not swallow a request to stop."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def exit_cleanly(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a command's ``main``: SIGINT and SIGTERM end it with ``<name>: interrupted`` (status 130) or
    ``<name>: terminated`` (143) on stderr, after the stack has unwound; no traceback."""

    def decorate(main: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(main)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            # Signal handlers can only be set from the main thread (a test runner may call main elsewhere).
            owner = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGTERM, _raise_terminated) if owner else None
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                print(f"{name}: interrupted", file=sys.stderr)
                raise SystemExit(EXIT_SIGINT) from None
            except Terminated:
                print(f"{name}: terminated", file=sys.stderr)
                raise SystemExit(EXIT_SIGTERM) from None
            finally:
                if owner:
                    signal.signal(signal.SIGTERM, previous)

        return run

    return decorate


def ignore_in_worker() -> None:
    """Initializer for pool workers forked by a command: Ctrl-C reaches the whole process group, and the
    command (not each worker, with a traceback apiece) handles it; SIGTERM kills a worker outright (workers
    write nothing themselves) instead of raising the handler inherited from the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class StopRequest:
    """The first SIGINT or SIGTERM received inside :func:`deferred_stop`, held until the loop can act on it."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def asked(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum or signal.SIGTERM).name

    def stop(self) -> NoReturn:
        """Raise what the signal would have raised at once: KeyboardInterrupt for SIGINT, else Terminated
        (also when the stop was agreed with other ranks but this process received nothing)."""
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(self.signum or signal.SIGTERM)


@contextlib.contextmanager
def deferred_stop() -> Iterator[StopRequest]:
    """Within the block the first SIGINT or SIGTERM is recorded in the yielded :class:`StopRequest` instead of
    raising; the handlers in place before come back at that moment, so a second signal stops at once (Ctrl-C
    twice). Outside the main thread (where no handler can be set) nothing is deferred and the request stays
    empty. The handler only records: printing from it could re-enter a write to the same stream."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    signums = (signal.SIGINT, signal.SIGTERM)
    # None: a handler set outside Python; the default is what stands in for it
    previous = {signum: signal.getsignal(signum) or signal.SIG_DFL for signum in signums}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def hold(signum: int, frame: Any) -> None:
        request.signum = signum
        restore()

    for signum in signums:
        signal.signal(signum, hold)
    try:
        yield request
    finally:
        restore()
