"""Lazy re-exports for package ``__init__`` modules (PEP 562 module ``__getattr__``/``__dir__``).

A package whose ``__init__`` imports its torch modules eagerly makes every import of one of its
light submodules (``codec.model.config``, ``codec.train.config``, ...) pay for torch, because
Python runs the package ``__init__`` first. ``pipeline.params`` imports those config modules
for every stage CLI and for the Snakefile at parse time; reading params.yaml must not load torch.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build ``(__getattr__, __dir__)`` for ``package`` (pass ``__name__``).

    ``exports`` maps an attribute name to the module that defines it; that module is imported on the
    first access to the name, and the value is then stored on the package so later accesses are plain
    attribute look-ups. Unknown names raise :class:`AttributeError` (which ``from package import
    submodule`` relies on to fall back to importing the submodule).
    """
    exports = dict(exports)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
