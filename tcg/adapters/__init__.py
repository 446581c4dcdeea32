"""Adapters: our translation buffer and retirement policies in emulators we did not write.

A policy is only worth something if it plugs into any emulator with a code
cache, not just ours. Each adapter here keeps the other emulator's
instruction semantics and replaces its code cache with a
:class:`~tcg.buffer.TranslationBuffer` retired by any
:class:`~tcg.policies.RetirePolicy`, run by the same cpu loop as
:class:`tcg.Machine`, with the same results and statistics.

* :mod:`tcg.adapters.tinyrv`: tinyrv, a RISC-V simulator in pure Python
  (``pip install --no-deps tinyrv==0.1.0``).
"""
