"""`dvc plots show` with the offline template (scripts/fetch_vega.py) draws its plots with no network;
DVC's default page, which loads vega from a CDN, stays blank in the same offline browser."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "workflow" / "plots" / "offline.html"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
DVC = str(Path(sys.executable).with_name("dvc"))

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (`apt-get install chromium`)")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    if TEMPLATE.is_file():
        return TEMPLATE
    built = tmp_path_factory.mktemp("template") / "offline.html"  # `make env` builds it; else build it here
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fetch_vega.py"), "--out", str(built)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"no offline template and the npm registry is unreachable: {done.stderr.strip()[-300:]}")
    return built


def _offline_dom(page: Path, profile: Path) -> str:
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: the machine is offline
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=120).stdout


def test_plots_render_offline_with_the_template_and_not_without(template, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=repo, check=True)
    (repo / "loss.csv").write_text("step,loss\n" + "".join(f"{s},{1 / (s + 1):.4f}\n" for s in range(20)))
    (repo / "dvc.yaml").write_text("plots:\n  - loss.csv:\n      x: step\n      y: loss\n")
    for name, extra in [("offline", ["--html-template", str(template)]), ("default", [])]:
        subprocess.run(
            [DVC, "plots", "show", "-o", str(tmp_path / name), *extra], cwd=repo, check=True, capture_output=True
        )
    offline = _offline_dom(tmp_path / "offline" / "index.html", tmp_path / "profile-1")
    default = _offline_dom(tmp_path / "default" / "index.html", tmp_path / "profile-2")
    drawn = re.compile(r"<canvas\b|<svg\b[^>]*class=\"marks\"")
    assert drawn.search(offline), offline[-2000:]
    assert "cdn.jsdelivr.net" not in (tmp_path / "offline" / "index.html").read_text()
    assert not drawn.search(default)  # the CDN's scripts never arrive: DVC's own page is blank offline
