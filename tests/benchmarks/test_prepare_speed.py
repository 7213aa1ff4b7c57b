"""The prepare speed benchmark generates a few seconds of audio per input rate and prepares it (its timings are
its output, never asserted here)."""

from __future__ import annotations

import re

from benchmarks import prepare_speed
from tests.benchmarks.conftest import finite, positive

REPORT = re.compile(
    r"(.+): (\S+) h in (\S+) s = (\S+)x real time \(CPU (\S+) s = (\S+)x per busy core; (\d+) rejected\)"
)


def test_benchmark_smoke(capsys):
    prepare_speed.main(["--hours", "0.003", "--rates", "22050", "44100", "--workers", "1", "--skip-real-corpus"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "prepare speed, target 16000 Hz, soxr HQ, zstd Parquet, workers=1"
    assert len(lines) == 5  # generated + report per rate; the real corpus left out
    for rate, generated, report in zip((22050, 44100), lines[1::2], lines[2::2]):
        assert re.fullmatch(rf"  generated \S+ h at {rate} Hz in \S+ s", generated), generated
        match = REPORT.fullmatch(report)
        assert match and match[1].strip() == f"{rate} Hz", report
        assert positive([float(match[i]) for i in (3, 5)]) and finite([float(match[i]) for i in (2, 4, 6)])
        assert match[7] == "0"  # speech-like files are never rejected
