"""The API reference: one page per package, every public name on it, no private one."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PACKAGES = ["rcu", "quiescent", "tcg"]
# The names a directive documents: ".. autoclass:: rcu.Domain", ".. py:class:: ...".
DIRECTIVE = re.compile(r"^\.\. (?:auto\w+|py:\w+):: ([\w.]+)", re.M)


def _documented(package: str) -> set[str]:
    return set(DIRECTIVE.findall((DOCS / "api" / f"{package}.md").read_text(encoding="utf-8")))


def test_index_links_one_page_per_package() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for package in PACKAGES:
        assert re.search(rf"^api/{package}$", index, re.M), f"api/{package} not in the toctree"
    assert not (DOCS / "api.md").exists()


@pytest.mark.parametrize("package", PACKAGES)
def test_page_documents_every_public_name(package: str) -> None:
    module = importlib.import_module(package)
    missing = {f"{package}.{name}" for name in module.__all__} - _documented(package)
    assert not missing, f"docs/api/{package}.md lacks {sorted(missing)}"


@pytest.mark.parametrize("package", PACKAGES)
def test_page_documents_no_private_name(package: str) -> None:
    private = {
        name
        for name in _documented(package)
        if any(part.startswith("_") for part in name.split("."))
    }
    assert not private, f"docs/api/{package}.md documents {sorted(private)}"
