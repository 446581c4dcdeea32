"""The policy example in the docs is real: it runs under the synthetic driver."""

from __future__ import annotations

import quiescent
import rcu
from tcg import TranslationBuffer
from tests.docs_examples import run_example
from tests.tcg.driver import Driver


def test_hybrid_policy_from_the_docs_is_safe_and_flushes() -> None:
    hybrid = run_example("guide/policies.md", "hybrid-policy")["HybridRetire"]
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
