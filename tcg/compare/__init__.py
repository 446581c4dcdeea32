"""The comparison harness: every policy on the same guest work, side by side.

Why a harness
-------------
Whether retiring translated code under RCU beats a stop-the-world flush is
not a question one run answers. The answer depends on how much code the guest
has against how much buffer it gets (a flush that runs once a second costs
nothing; one that runs every millisecond costs everything), on how many vCPUs
a flush must stop, and on noise. So the harness runs a grid of *cells*,
``(policy, vcpus, buffer_kb, workload)``, each ``repeat`` times, and reports
the median with a 95% interval. Next to each (workload, vCPU count) it runs a
*no-pressure baseline* (a buffer so large nothing is ever retired), so that
throughput under pressure reads as a fraction of what the same machine does
when reclamation never happens.

Runs and rounds
---------------
A *run* executes the workload back to back until it has done at least
``min_run_seconds`` of guest work (one execution when that is 0), so that a
run's throughput is total instructions over total time, not the start-up of
one short program. The runs go in *rounds*: each round runs every cell and
every baseline once, so the baseline gets as many runs as each cell. Within a
round, the policies of one site (vCPUs, buffer, workload) run one after the
other, in a shuffled order, and the sites go in a shuffled order
(:func:`schedule`): run *i* of one policy and run *i* of another at the same
site ran seconds apart, under the same load of the host, and
:func:`comparisons` pairs them.

What is measured, and how
-------------------------
Most numbers come straight from :class:`tcg.machine.MachineResult`: guest
instructions and MIPS, translations and retranslations, flushes and region
retirements, grace-period latency, peak and sampled host-code bytes. One
number needs help: *how long vCPUs were stopped or waiting because of the
policy*. The harness wraps the policy in a probe that delegates every call
and records, per vCPU thread, the intervals spent outside guest code (from
the ``leave`` hook to the next ``enter``) and the intervals in which any
translator waited for space. An interval outside guest code counts as a
policy pause when its own vCPU waited for space in it, or, for a policy that
stops the world (one whose statistics report flushes or their latency), when it
overlaps any vCPU's wait. System calls and atomic steps alone do not count.

Correctness is checked on every run: the guest's output must equal the
workload's expected output (a prefix of it, when the run was cut short by its
budget), no run may hit a :class:`tcg.UseAfterReclaimError`, and no run may
fault. A run is bounded either by ``instructions`` (the machine stops once
that many have retired) or by ``seconds``: a timer stops the machine at the
next safe point once the budget has passed; a program that ends sooner simply
ends.

Scenarios
---------
The ``pressure`` scenario is the grid above. The ``stall`` scenario asks a
different question: what does each policy do when one vCPU is blocked in a
long host call? Its cells run the ``stall`` guest (one hart sleeps in
``nanosleep`` while the others run code under buffer pressure) twice, with
the machine's ``host_calls`` set to ``"inside"`` (the naive way: the sleeper
stays in ``running()`` and its read-side critical section, so a flush's
exclusive section and an RCU grace period wait for the rest of its sleep) and
to ``"outside"`` (the right way: the hart leaves guest code before it blocks,
so nobody waits for it). Each record says which in its ``host_calls`` field.

Everything a worker process returns is plain data (dicts, lists, numbers,
strings), so cells can run in parallel processes and the result is the JSON
document itself.

Modules
-------
:mod:`tcg.compare.grid` (cells and settings), :mod:`tcg.compare.probe` (when
vCPUs stopped), :mod:`tcg.compare.runs` (one run, one cell),
:mod:`tcg.compare.harness` (the rounds and the document) and
:mod:`tcg.compare.pairing` (the comparisons); the names below are those of
the package (with the limits and types the harness used to export outside
``__all__``). The document is a :class:`tcg.record.ComparisonDocument` as
JSON, each of its cells a :class:`tcg.record.CellRecord`.
"""

from tcg.compare.grid import (
    BASELINE_KB,
    JSON_VERSION,
    SCENARIOS,
    Cell,
    Settings,
    check_policy,
    resolve_workload,
)
from tcg.compare.grid import GuestProgram as GuestProgram
from tcg.compare.grid import HostCalls as HostCalls
from tcg.compare.harness import Progress as Progress
from tcg.compare.harness import machine_info, run_comparison, schedule
from tcg.compare.pairing import CONFIDENCE, METRICS, comparisons, pressure_cells
from tcg.compare.pairing import LOST_FLOOR_MS as LOST_FLOOR_MS
from tcg.compare.runs import MAX_STOPS_PER_VCPU as MAX_STOPS_PER_VCPU
from tcg.compare.runs import MAX_TIMELINE as MAX_TIMELINE
from tcg.compare.runs import run_cell, run_once, summarize

__all__ = [
    "BASELINE_KB",
    "CONFIDENCE",
    "JSON_VERSION",
    "METRICS",
    "SCENARIOS",
    "Cell",
    "Settings",
    "check_policy",
    "comparisons",
    "machine_info",
    "pressure_cells",
    "resolve_workload",
    "run_cell",
    "run_comparison",
    "run_once",
    "schedule",
    "summarize",
]
