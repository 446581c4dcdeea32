"""The policy example in the docs is real: it runs under the synthetic driver."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import quiescent
import rcu
from tcg import TranslationBuffer
from tests.tcg.driver import Driver

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "policies.md"


def _example(name: str) -> dict[str, Any]:
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(
        rf"<!-- example: {name} -->\s*```python\n(.*?)```\s*<!-- end example -->", text, re.S
    )
    assert match, f"example {name!r} not found in {GUIDE}"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(GUIDE), "exec"), namespace)
    return namespace


def test_hybrid_policy_from_the_docs_is_safe_and_flushes() -> None:
    hybrid = _example("hybrid-policy")["HybridRetire"]
    world = quiescent.World()
    domain = rcu.Domain(stall_timeout=None)
    policy = hybrid(domain, world, limit=1024)
    try:
        buffer = TranslationBuffer(8 * 1024, 8, policy)
        result = Driver(buffer, world, vcpus=3, translators=1, steps=4000, seed=5).run()
    finally:
        domain.close()
    assert not result.errors, result.errors
    assert result.violations == []
    stats = policy.statistics()
    assert stats.reclaims > 0  # it retired by RCU ...
    assert policy.flushes > 0  # ... and flushed when reclamation fell behind
