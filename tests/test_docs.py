"""The documentation holds together: README.md and every Markdown page under docs/.

- every relative link and image resolves to a file or folder of the checkout, and a ``#anchor`` into a Markdown
  page names one of its headings (external http(s) and mailto links are not fetched);
- every ``telucodec <command>`` run in a fenced code block (or in an inline code span that starts with it) names a
  real subcommand of ``codec.cli.main.build_parser()``, and every ``python -m X`` names a module that
  ``importlib.util.find_spec`` finds as a file (nothing is run);
- README.md stays a front page: at most 250 lines;
- the Python examples of README.md and docs/python.md run as written (with the shipped codec).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold brackets one level deep.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# Where a shell line starts another command: pipes, lists, subshells, command substitution.
SEPARATORS = re.compile(r"\|\||&&|\||;|\$\(|`|\(")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PYTHON = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def split_markdown(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(prose lines, fenced code lines), each as (line number, text); the fence lines themselves in neither."""
    prose: list[tuple[int, str]] = []
    code: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if match and (fence is None or match.group(1) == fence):
            fence = match.group(1) if fence is None else None
            continue
        (prose if fence is None else code).append((number, line))
    return prose, code


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lower case, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = split_markdown(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose:
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Every relative link or image of ``path`` that names no existing file (or no heading of a page)."""
    prose, _ = split_markdown(path.read_text(encoding="utf-8"))
    problems = []
    for number, line in prose:
        # Code spans are not links, but a link's text may be a code span: blank their content, keep their length.
        line = INLINE_CODE.sub(lambda m: m.group(1) + "x" * len(m.group(2)) + m.group(1), line)
        for match in LINK.finditer(line):
            target = match.group(1)
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:, ...
                continue
            file_part, _, anchor = target.partition("#")
            where = f"{path.relative_to(root)}:{number}: {target}"
            resolved = (path.parent / file_part).resolve() if file_part else path
            if file_part and not resolved.exists():
                problems.append(f"{where}: no such file {resolved}")
                continue
            if not resolved.is_relative_to(root):
                problems.append(f"{where}: points outside the checkout")
                continue
            if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{where}: no heading #{anchor} in {resolved.relative_to(root)}")
    return problems


def subcommands() -> set[str]:
    from codec.cli.main import build_parser

    parser = build_parser()
    return {
        name for action in parser._actions if isinstance(action, argparse._SubParsersAction) for name in action.choices
    }


def commands_in(line: str) -> list[list[str]]:
    """The simple commands a shell line runs, each as its words (comments and leading VAR=value dropped)."""
    try:
        words = shlex.split(line, comments=True, posix=True)
    except ValueError:  # an unbalanced quote on a continued line: fall back to splitting on blanks
        words = line.split("#", 1)[0].split()
    text = " ".join(words)
    commands = []
    for part in SEPARATORS.split(text):
        tokens = part.split()
        while tokens and (tokens[0] in {"$", ">", "sudo", "time", "exec", "eval"} or ENV_ASSIGNMENT.match(tokens[0])):
            tokens.pop(0)
        if tokens:
            commands.append(tokens)
    return commands


def code_lines(path: Path) -> list[tuple[int, str]]:
    """The lines of fenced code blocks, and the inline code spans that start with a command this test checks."""
    prose, code = split_markdown(path.read_text(encoding="utf-8"))
    spans = [
        (number, match.group(2).strip())
        for number, line in prose
        for match in INLINE_CODE.finditer(line)
        if re.match(r"^(telucodec\s+\S|python3?\s+-m\s+\S)", match.group(2).strip())
    ]
    return code + spans


def bad_commands(path: Path, known: set[str], root: Path = ROOT) -> list[str]:
    """Every ``telucodec X`` with no subcommand X and every ``python -m X`` with no module file X in ``path``."""
    problems = []
    for number, line in code_lines(path):
        for words in commands_in(line):
            where = f"{path.relative_to(root)}:{number}: {' '.join(words)}"
            name, args = words[0], words[1:]
            if name == "telucodec" and args and not args[0].startswith("-"):
                if args[0] not in known:
                    problems.append(f"{where}: no telucodec command {args[0]!r} (known: {', '.join(sorted(known))})")
            elif PYTHON.match(name) and "-m" in args[:-1]:
                module = args[args.index("-m") + 1]
                if "<" in module:  # a placeholder such as benchmarks.<name>
                    continue
                if not module_file_exists(module):
                    problems.append(f"{where}: no module {module!r} to run")
    return problems


def module_file_exists(module: str) -> bool:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None and Path(spec.origin).is_file()


DOCS = doc_files()


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_commands_in_code_blocks_exist(path: Path) -> None:
    assert bad_commands(path, subcommands()) == []


def test_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_every_docs_page_is_linked_from_the_index() -> None:
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    targets = {(ROOT / "docs" / m.group(1).partition("#")[0]).resolve() for m in LINK.finditer(index)}
    pages = [p for p in (ROOT / "docs").glob("*.md") if p.name != "README.md"]
    assert [p.name for p in pages if p.resolve() not in targets] == []


def test_the_checks_catch_what_they_should(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# A page\n\n## Its part (`x`)\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/there.md) [ok](docs/there.md#its-part-x) ![ok](docs) [web](https://example.org/missing)\n"
        "[gone](docs/missing.md) ![gone](docs/missing.png) [bad anchor](docs/there.md#nowhere)\n"
        "`[not a link](docs/missing.md)`\n"
        "```bash\n"
        "[not a link either](docs/missing.md)\n"
        "telucodec encode a.wav a.tcq | telucodec decode a.tcq b.wav  # telucodec nonsense in a comment\n"
        "telucodec compress a.wav\n"
        "cd telucodec && python -m pipeline.train && python -m pipeline.nothing_here\n"
        "```\n"
        "Run `telucodec squash x` or `python -m benchmarks.<name>`.\n"
    )
    links = broken_links(page, tmp_path)
    assert len(links) == 3 and all(s.startswith("README.md:2:") for s in links), links
    commands = bad_commands(page, {"encode", "decode"}, tmp_path)
    assert commands == [
        "README.md:7: telucodec compress a.wav: no telucodec command 'compress' (known: decode, encode)",
        "README.md:8: python -m pipeline.nothing_here: no module 'pipeline.nothing_here' to run",
        "README.md:10: telucodec squash x: no telucodec command 'squash' (known: decode, encode)",
    ], commands


PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
EXAMPLE_PAGES = [ROOT / "README.md", ROOT / "docs" / "python.md"]  # the API's examples; other pages sketch
PYTHON_EXAMPLES = [
    (path, number)
    for path in EXAMPLE_PAGES
    for number, _ in enumerate(PYTHON_BLOCK.findall(path.read_text(encoding="utf-8")))
]


@pytest.mark.parametrize(
    "path, number", PYTHON_EXAMPLES, ids=[f"{p.relative_to(ROOT)}-{n}" for p, n in PYTHON_EXAMPLES]
)
def test_python_examples_run(path: Path, number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block of the docs runs as written (its own asserts say what it must give), in a folder
    whose ``talk.wav`` is 2 s of a 44.1 kHz stereo tone, what the examples read."""
    if not (ROOT / "pretrained" / "telucodec-te" / "telucodec-te.safetensors").is_file():
        pytest.skip("the shipped codec is not in this checkout")
    import numpy as np
    import soundfile as sf

    t = np.arange(2 * 44100) / 44100
    tone = 0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t)) / 2
    sf.write(tmp_path / "talk.wav", np.stack([tone, 0.5 * tone], axis=1), 44100)
    monkeypatch.chdir(tmp_path)
    source = PYTHON_BLOCK.findall(path.read_text(encoding="utf-8"))[number]
    exec(compile(source, f"{path.relative_to(ROOT)} (python block {number})", "exec"), {"__name__": "__doc_example__"})
