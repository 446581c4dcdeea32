"""Run the marked Python examples of a docs page (shared by the docs tests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs"


def run_example(page: str, name: str) -> dict[str, Any]:
    """Execute the block marked ``<!-- example: name -->`` in ``docs/page``; return its names."""
    path = DOCS / page
    text = path.read_text(encoding="utf-8")
    match = re.search(
        rf"<!-- example: {name} -->\s*```python\n(.*?)```\s*<!-- end example -->", text, re.S
    )
    assert match, f"example {name!r} not found in {path}"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(path), "exec"), namespace)
    return namespace
