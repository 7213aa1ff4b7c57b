"""The live progress bar of a training run (tqdm): step, loss, validation SNR, examples/s and ETA."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class TrainProgress:
    """A tqdm bar over steps ``[initial, total)``; ``enabled=False`` (non-main ranks, tests) shows nothing.

    Throughput is measured between updates in examples per second over all ranks.
    """

    def __init__(self, total: int, initial: int, examples_per_step: int, enabled: bool = True):
        self.examples_per_step = examples_per_step
        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="step",
            dynamic_ncols=True,
            disable=not enabled,
            file=sys.stderr,
            mininterval=0.5,
        )
        self._last_step, self._last_time = initial, time.perf_counter()
        self.examples_per_second = 0.0
        self.snr_db: float | None = None

    def update(self, step: int, loss: float | None = None) -> None:
        """Advance the bar to ``step`` (steps done); refresh throughput and the shown loss."""
        now = time.perf_counter()
        if step > self._last_step and now > self._last_time:
            rate = (step - self._last_step) * self.examples_per_step / (now - self._last_time)
            # Smoothed, so one slow step (validation, checkpoint) does not make the figure jump.
            self.examples_per_second = (
                rate if not self.examples_per_second else 0.8 * self.examples_per_second + 0.2 * rate
            )
        self.bar.update(step - self.bar.n)
        self._last_step, self._last_time = step, now
        postfix = {"loss": f"{loss:.3f}" if loss is not None else "-", "ex/s": f"{self.examples_per_second:.1f}"}
        if self.snr_db is not None:
            postfix["snr"] = f"{self.snr_db:+.2f}dB"
        self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        self.bar.close()
