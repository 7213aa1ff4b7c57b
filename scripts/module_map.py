#!/usr/bin/env python
"""The project's module map: packages as boxes, imports between them as arrows, drawn from the code itself.

    scripts/module_map.py --out docs/architecture/modules.png      # the picture in the README
    scripts/module_map.py --root /path/to/other/checkout --out x.png

Reads every ``.py`` of ``codec/`` and ``pipeline/`` (``import`` and ``from ... import`` anywhere in a file,
function-level ones included), groups modules by package (``codec/data/corpora`` counts as ``codec/data``)
and draws one box per package, ranked so that every arrow points down (a package imports only what sits
below it); the number on an arrow is how many modules of the upper package import the lower one. Prints the
same as text, and exits 1 when the packages import each other in a circle.
The import walk is also what tests/workflow/test_dvc_deps.py checks dvc.yaml's deps against.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

PACKAGES = ("codec", "pipeline")
SLOT = 2.3  # horizontal room per box (a box is 1.9 wide)


def module_file(root: Path, name: str) -> Path | None:
    """The file of module ``name`` under ``root`` (a package's ``__init__.py``); None outside the project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(root: Path, path: Path) -> set[str]:
    """Project modules ``path`` imports; ``from a import b`` counts ``a.b`` when that is a module, and importing
    ``a.b.c`` runs ``a`` and ``a.b`` first."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise ValueError(f"{path}: relative import of {node.module} (the project imports absolutely)")
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    parents = {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 1)}
    return {m for m in found | parents if module_file(root, m) is not None}


def package_of(root: Path, path: Path) -> str:
    """The box of a file: ``codec/data`` for codec/data/prepare.py and codec/data/corpora/ulca.py, ``pipeline``
    for every stage script, ``codec`` for codec/__init__.py, and a module of its own (``codec/audio``) for a
    module straight under codec/."""
    parts = path.relative_to(root).parts
    if parts[0] != "codec" or len(parts) > 2:
        return "/".join(parts[:2]) if parts[0] == "codec" else parts[0]
    return "codec" if parts[1] == "__init__.py" else f"codec/{Path(parts[1]).stem}"


def package_graph(root: Path) -> tuple[dict[str, int], Counter]:
    """Lines per package, and ``(importer, imported) -> modules of importer that import imported``."""
    lines: Counter = Counter()
    edges: Counter = Counter()
    for top in PACKAGES:
        for path in sorted((root / top).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            here = package_of(root, path)
            if here == "codec":  # codec/__init__.py: the library's docstring, no code
                continue
            lines[here] += len(path.read_text(encoding="utf-8").splitlines())
            targets = {package_of(root, module_file(root, m)) for m in imported_modules(root, path)}
            edges.update((here, there) for there in targets if there != here and there != "codec")
    return dict(lines), edges


def ranks(nodes: list[str], edges: Counter) -> dict[str, int]:
    """Longest path to a package that imports nothing of the project (0); raises on a cycle."""
    out: dict[str, int] = {}
    visiting: set[str] = set()

    def rank(node: str) -> int:
        if node in out:
            return out[node]
        if node in visiting:
            raise ValueError(f"packages import each other in a circle through {node}")
        visiting.add(node)
        below = [b for (a, b) in edges if a == node]
        out[node] = 1 + max(map(rank, below)) if below else 0
        visiting.discard(node)
        return out[node]

    for node in nodes:
        rank(node)
    return out


def draw(lines: dict[str, int], edges: Counter, level: dict[str, int], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    rows: dict[int, list[str]] = {}
    for node in sorted(level, key=lambda n: (level[n], n)):
        rows.setdefault(level[node], []).append(node)
    width = max(len(r) for r in rows.values())
    place = {}
    for lvl, row in rows.items():
        for i, node in enumerate(row):
            place[node] = ((i + 0.5) * width / len(row) * SLOT, lvl)
    fig, ax = plt.subplots(figsize=(1.5 * SLOT * width + 0.5, 1.2 * (max(rows) + 1) + 0.6))
    for (a, b), count in sorted(edges.items()):
        (xa, ya), (xb, yb) = place[a], place[b]
        ax.annotate(
            "",
            xy=(xb, yb + 0.2),
            xytext=(xa, ya - 0.2),
            arrowprops=dict(arrowstyle="-|>", color="#7a869a", lw=0.6 + 0.25 * count, alpha=0.7, shrinkA=2, shrinkB=2),
        )
    for node, (x, y) in place.items():
        box = FancyBboxPatch(
            (x - 0.95, y - 0.2),
            1.9,
            0.4,
            boxstyle="round,pad=0.02",
            fc="#e8f0fe" if node.startswith("codec") else "#fde8e8",
            ec="#3b5998" if node.startswith("codec") else "#a33",
            lw=1,
        )
        ax.add_patch(box)
        ax.text(x, y + 0.04, node, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(x, y - 0.11, f"{lines[node]:,} lines", ha="center", va="center", fontsize=7, color="#555")
    ax.set_xlim(-0.1, width * SLOT + 0.1)
    ax.set_ylim(-0.5, max(rows) + 0.5)
    ax.axis("off")
    ax.set_title("TeluCodec packages; an arrow: the upper package imports the lower", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent, help="checkout to map")
    ap.add_argument("--out", type=Path, help="PNG to write (text only without it)")
    args = ap.parse_args(argv)
    lines, edges = package_graph(args.root)
    try:
        level = ranks(sorted(lines), edges)
    except ValueError as exc:
        print(f"error: module map: {exc}", file=sys.stderr)
        return 1
    for lvl in sorted(set(level.values()), reverse=True):
        for node in sorted(n for n in level if level[n] == lvl):
            below = ", ".join(f"{b} ({c})" for (a, b), c in sorted(edges.items()) if a == node)
            print(f"rank {lvl}  {node:<22} {lines[node]:>6} lines  -> {below or '(nothing of the project)'}")
    print(f"{len(lines)} packages, {len(edges)} package-to-package imports, no circles")
    if args.out:
        draw(lines, edges, level, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
