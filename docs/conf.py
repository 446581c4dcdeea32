"""Sphinx configuration of the rcu-quiescent documentation."""

from __future__ import annotations

import sys
from pathlib import Path

# Document the sources next to this file, not whatever copy is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = "rcu-quiescent"
author = "The rcu-quiescent developers"
copyright = "2026, The rcu-quiescent developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False
html_theme = "alabaster"
