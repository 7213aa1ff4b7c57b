"""Build the offline page template for `dvc plots show`: vega, vega-lite and vega-embed inlined.

DVC's default page loads those three scripts from a CDN, so `dvc plots show` writes a blank page on a
machine without internet (a cluster node, a laptop on a train). This fetches the pinned npm packages once
(from the npm registry, each checked against its published sha512 integrity; cached under
``~/.cache/telucodec/npm``), and writes ``workflow/plots/offline.html``: a page template with the three
minified builds inline and DVC's ``{plot_divs}`` placeholder. `make env` runs it; then

    dvc plots show --html-template workflow/plots/offline.html      (or: make plots)

    python scripts/fetch_vega.py [--out workflow/plots/offline.html] [--cache DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path

from codec.runtime.io import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]

REGISTRY = "https://registry.npmjs.org"
# (package, version, sha512 integrity from the registry, file inside the tarball)
PACKAGES = [
    (
        "vega",
        "5.30.0",
        "ZGoC8LdfEUV0LlXIuz7hup9jxuQYhSaWek2M7r9dEHAPbPrzSQvKXZ0BbsJbrarM100TGRpTVN/l1AFxCwDkWw==",
        "package/build/vega.min.js",
    ),
    (
        "vega-lite",
        "5.21.0",
        "hNxM9nuMqpI1vkUOhEx6ewEf23WWLmJxSFJ4TA86AW43ixJyqcLV+iSCO0NipuVTE0rlDcc2e8joSewWyOlEwA==",
        "package/build/vega-lite.min.js",
    ),
    (
        "vega-embed",
        "6.26.0",
        "AZCTdKHDAuhp6TFZRQOOs332tStCwZr/5e4uZMNEuJL69A57cT66NNZJdNiCP6u66REzIToYtMJhMTL9wl5B3A==",
        "package/build/vega-embed.min.js",
    ),
]
DVC_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")  # dvc_render fills these by str.replace

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>TeluCodec plots (DVC)</title>
<!-- vega {vega}, vega-lite {vega_lite}, vega-embed {vega_embed}, inline: this page needs no network -->
{inline}
<style>body { font-family: sans-serif; } table { border-spacing: 15px; }</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def fetch(name: str, version: str, integrity: str, cache: Path) -> bytes:
    """The package tarball, from the cache or the registry; refused unless its sha512 matches."""
    path = cache / f"{name}-{version}.tgz"
    data = path.read_bytes() if path.is_file() else None
    if data is None:
        url = f"{REGISTRY}/{name}/-/{name}-{version}.tgz"
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != integrity:
        raise SystemExit(f"error: {name}@{version}: sha512 {digest} does not match the pinned {integrity}")
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


def build_page(cache: Path) -> str:
    scripts = []
    for name, version, integrity, member in PACKAGES:
        with tarfile.open(fileobj=io.BytesIO(fetch(name, version, integrity, cache)), mode="r:gz") as tar:
            source = tar.extractfile(member).read().decode("utf-8")
        if any(p in source for p in DVC_PLACEHOLDERS) or "</script" in source.lower():
            raise SystemExit(f"error: {name}'s build contains text DVC or the page would misread")
        scripts.append(f"<script>{source}</script>")
    versions = {p[0].replace("-", "_"): p[1] for p in PACKAGES}
    # Only this script's own placeholders are filled (the scripts last); DVC's stay for `dvc plots show`.
    return (
        PAGE.replace("{vega}", versions["vega"])
        .replace("{vega_lite}", versions["vega_lite"])
        .replace("{vega_embed}", versions["vega_embed"])
        .replace("{inline}", "\n".join(scripts))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "workflow" / "plots" / "offline.html")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "telucodec" / "npm")
    args = parser.parse_args()
    try:
        page = build_page(args.cache)
    except OSError as exc:
        raise SystemExit(
            f"error: cannot fetch vega from {REGISTRY} ({exc}); `dvc plots show` still works with "
            "internet (its default page loads vega from a CDN)"
        ) from None
    write_text_atomic(args.out, page)
    print(f"wrote {args.out} ({len(page) / 1e6:.1f} MB: vega, vega-lite and vega-embed inline)")


if __name__ == "__main__":
    main()
