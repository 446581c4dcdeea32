"""The cpu loop: one vCPU thread running blocks from the translation buffer.

This is QEMU's ``cpu_exec`` in miniature, written once for every engine and
every test driver: find the block for the pc (jump cache, then index, then
translate), run it and the blocks its links lead to, repeat, checking for
exit requests after every block, and leave guest code for what must not
happen inside it. It is the emulator's hot path, so the inner loop binds
everything it uses to local variables first and makes no call per block
beyond the lookup (when no link leads on), the block itself and, at each
quiescent point, the policy's boundary hook.

One turn of the outer loop (the per-block step is the body of the inner
``while``, one delimited section of :meth:`CpuLoop.run`'s loop)::

    with cpu.running():                 # stop-the-world read side
        hooks.enter()                   # the policy's read side (RCU)
        mark.seq += 1                   # odd: may hold a TB (VcpuMark)
        prev = none                     # the block just run (for its links)
        while not cpu.exit_requested and instret below the check:
            tb = prev's link for pc     # chained: no lookup
              or lookup or translate    # BufferFullError: ask on_full(), leave
                 (then link prev -> tb if pc is one of prev's direct exits)
            if tb is special: leave     # ecall, atomics, fence.i, csr...
            repeat, at most 1 + CHAIN_RUN times:
                check tb; pc = tb.fn(h); check tb   # the reclamation oracle
                tb = tb's link for pc, unless none, an exit request or the limit
            mark.seq += 1; hooks.boundary(); mark.seq += 1   # a quiescent point
            prev = tb
        mark.seq += 1                   # even: holds nothing
        hooks.leave()
    wait for space (with the token) / run the special instruction
    cpu.process_work()                  # safe work, flushes, kicks
    ask the owner where the next check is (None: stop)

A vCPU waits for space and runs special instructions only outside
``running()`` and the policy's read side, so neither an exclusive section nor
a grace period ever waits for a thread that waits for them. The exception is
a blocking host call under ``host_calls="inside"``: the naive way, kept to
measure it.

The owner of the loop decides two things, given as callables:
``translate(pc)`` makes and publishes the TB at ``pc`` (or raises
:class:`~tcg.errors.BufferFullError`), and ``next_check(h)``, asked before
the first entry and after every exit from guest code, returns the hart's
``instret`` at which the loop next leaves guest code to ask again (an
instruction limit, a step budget) or None to stop. The loop also stops once
:meth:`~tcg.engine.Engine.run_special` says the hart exited. Exceptions (a
guest fault, :class:`~tcg.errors.UseAfterReclaimError` from the oracle)
propagate to the caller of :meth:`CpuLoop.run` after the vCPU has been
unregistered.

Chained blocks
--------------
Looking the next block up costs a short block as much as its own work. So,
as QEMU's ``goto_tb`` does, a block's direct exits are linked to the blocks
they lead to (:meth:`~tcg.buffer.TranslationBuffer.link`, under the
buffer's lock) the first time the loop goes that way, and from then on the
loop enters the successor through the link: one ``dict.get`` on the block it
just ran instead of the jump cache, the index and their checks. Everything
else of the per-block step stays: exit requests and the instruction check,
the oracle, the mark and the quiescent point. A computed jump (``jalr``) has
no direct exit and keeps the lookup.

Why following a link is safe. The buffer removes every link into a block
when it unlinks it (to retire its region, for a flush, for self-modifying
code), before the policy is told, so after a region is handed to its grace
period no link leads into it. A vCPU that read a link just before it was
removed holds the successor the way it would hold a block from the index: it
read the link *after* the quiescent point that ended the previous block
(``prev`` is set after ``boundary()``) and before the next one, inside one
stretch of its read side, so the grace period that the retirement waits for
cannot end before this vCPU's next quiescent point, which comes after it
ran the block. Under a flush, no vCPU is in guest code at all, and ``prev``
starts from nothing every time the loop enters guest code, so no link
survives into a world where the buffer was emptied. The buffer checks the
invariant at every reclaim and flush (a link into the region is a
violation), and the oracle catches a vCPU that follows a stale link into
reclaimed code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Literal

import quiescent
from tcg.block import TranslationBlock
from tcg.buffer import TranslationBuffer, VcpuMark
from tcg.engine import Engine, HartT, special_block
from tcg.errors import BufferFullError
from tcg.policies import VcpuHooks

__all__ = ["CHAIN_RUN", "CpuLoop"]

#: Blocks a vCPU may run through links after the block it found, before its
#: next quiescent point: the bound on how long chaining delays a grace period
#: (or a step aside) beyond one block, as ``LOOP_ITERATIONS`` bounds a block
#: that loops on itself.
CHAIN_RUN = 16

#: ``prev`` before the first block of a stretch of guest code: no exits, no
#: links (its dict is never written: :meth:`TranslationBuffer.link` is only
#: given the blocks the loop ran).
_NOTHING_RUN = TranslationBlock(0, 4, 0, int, 0, -1, 0, 1)


class CpuLoop(Generic[HartT]):
    """The cpu loop of the harts of one engine over one buffer and its policy.

    One object serves every hart of a machine: :meth:`run` holds the per-hart
    state in its own frame, on the hart's thread.
    """

    __slots__ = ("buffer", "engine", "host_calls", "next_check", "translate", "world")

    def __init__(
        self,
        world: quiescent.World,
        buffer: TranslationBuffer,
        engine: Engine[HartT],
        *,
        translate: Callable[[int], TranslationBlock],
        next_check: Callable[[HartT], int | None],
        host_calls: Literal["outside", "inside"] = "outside",
    ) -> None:
        self.world = world
        self.buffer = buffer
        self.engine = engine
        self.translate = translate
        self.next_check = next_check
        self.host_calls = host_calls

    def run(self, h: HartT, name: str) -> None:
        """Run hart ``h`` as the vCPU ``name`` until it stops, on the calling thread.

        Registers the vCPU with the world, takes the policy's hooks, a jump
        cache and a :class:`~tcg.buffer.VcpuMark`, and gives them back (also
        when an exception propagates).
        """
        buffer = self.buffer
        cpu = self.world.register(name=name)
        hooks = buffer.policy.vcpu_hooks()
        cache = buffer.new_jump_cache()
        mark = buffer.new_vcpu_mark(name)
        try:
            self._loop(h, cpu, hooks, cache, mark)
        finally:
            buffer.drop_vcpu_mark(mark)
            buffer.drop_jump_cache(cache)
            cpu.unregister()

    def _loop(
        self,
        h: HartT,
        cpu: quiescent.Vcpu,
        hooks: VcpuHooks,
        cache: list[TranslationBlock | None],
        mark: VcpuMark,
    ) -> None:
        enter, leave, boundary = hooks.enter, hooks.leave, hooks.boundary
        buffer = self.buffer
        lookup = buffer.lookup
        link, count_followed = buffer.link, buffer.count_followed
        generations = buffer.generations
        policy = buffer.policy
        on_full, wait_for_space = policy.on_full, policy.wait_for_space
        translate = self.translate
        next_check = self.next_check
        is_host_call, run_special = self.engine.is_host_call, self.engine.run_special
        inside = self.host_calls == "inside"
        pc = h.pc
        # The check is made where guest code can see it: a guest that loops
        # without a special instruction never leaves the inner loop. One
        # comparison per block.
        check_at = next_check(h)
        while check_at is not None:
            token: object = None
            full = special = False
            with cpu.running():
                enter()
                # ORDER: odd after the read side is entered, even again
                # before it is left or cut (see VcpuMark).
                mark.seq += 1
                prev = _NOTHING_RUN
                followed = 0
                try:
                    while not cpu.exit_requested and h.instret < check_at:
                        # ==== The per-block step ==========================
                        # 1. The block at pc: through the link of the block
                        #    just run, else from the jump cache or the index,
                        #    or translated and published here, inside the
                        #    read side (then linked, if pc is one of the
                        #    previous block's direct exits). A link never
                        #    leads to a special instruction's block.
                        tb = prev.links.get(pc)
                        if tb is None:
                            tb = lookup(cache, pc)
                            if tb is None:
                                try:
                                    tb = translate(pc)
                                except BufferFullError:
                                    # Asked here, where the buffer was found
                                    # full (the flush count this hart saw).
                                    token, full = on_full(), True
                                    break
                            # Special instructions leave guest code.
                            if tb.fn is special_block:
                                if inside and is_host_call(h, pc):
                                    # The naive way: block with the read side
                                    # held (a stalled vCPU, for comparison).
                                    h.pc = pc
                                    run_special(h)
                                    pc = h.pc
                                    prev = _NOTHING_RUN
                                    continue
                                special = True
                                break
                            if pc in prev.exits:
                                link(prev, tb)
                        else:
                            followed += 1
                        # 2. Run it, then the chain of blocks its links lead
                        #    to, up to CHAIN_RUN more, without a quiescent
                        #    point in between but with every other check.
                        #    The oracle, before and after each block: its
                        #    region must not be reclaimed while this hart
                        #    runs it.
                        n = CHAIN_RUN
                        while True:
                            if generations[tb.region] != tb.generation:
                                tb.check(generations)
                            pc = tb.fn(h)
                            if generations[tb.region] != tb.generation:
                                tb.check(generations)
                            nxt = tb.links.get(pc)
                            if nxt is None or not n or cpu.exit_requested:
                                break
                            if h.instret >= check_at:
                                break
                            tb = nxt
                            n -= 1
                        followed += CHAIN_RUN - n
                        # 3. A quiescent point.
                        mark.seq += 1
                        boundary()
                        mark.seq += 1
                        # ORDER: after the quiescent point: the link the next
                        # step follows is read in the same stretch of the read
                        # side as the block it leads to runs (see above).
                        prev = tb
                        # ==== End of the per-block step ===================
                finally:
                    count_followed(followed)
                    mark.seq += 1
                    leave()
                    h.pc = pc
            if full:
                wait_for_space(token)
            elif special:
                if not run_special(h):
                    return  # this hart exited
                pc = h.pc
            cpu.process_work()
            check_at = next_check(h)
