"""The tables of a report: the cells, the stall scenario's cells, the comparisons."""

from __future__ import annotations

from pathlib import Path

from tcg.record import CellRecord, DocumentLike, document
from tcg.report.verdict import comparison_items, interval_text, where_text


def _ok(c: CellRecord) -> str:
    ok = {True: "yes", False: "NO", None: "?"}[c.output_ok]
    return "NO" if c.violations or c.faults or c.error else ok


def _fraction(c: CellRecord) -> str:
    return "-" if c.baseline_fraction is None else f"{100 * c.baseline_fraction:.0f}%"


def stall_table_rows(doc: DocumentLike) -> tuple[list[str], list[list[str]]]:
    """The stall scenario's table: per cell, where host calls ran and who waited how long.

    Times are in milliseconds: the longest and p99 vCPU pause, the longest
    translator wait for space, the longest time to quiesce (an exclusive
    section waiting for every vCPU to leave guest code), and grace-period
    latency.
    """
    head = [
        "policy", "vCPUs", "KiB", "workload", "host calls", "MIPS", "of base", "flush/retire",
        "pause max", "pause p99", "wait max", "quiesce max", "GP p99", "GP max", "ok",
    ]  # fmt: skip
    rows = []
    for c in document(doc).cells:
        gp = c.gp_latency_ms
        rows.append(
            [
                c.policy,
                str(c.vcpus),
                f"{c.buffer_kb:g}",
                Path(c.workload).name,
                c.host_calls,
                f"{c.mips:.2f}",
                _fraction(c),
                str(c.flushes or c.retirements),
                f"{c.pause_ms.max:.1f}",
                f"{c.pause_ms.p99:.1f}",
                f"{c.wait_ms.max:.1f}",
                f"{c.time_to_quiesce_ms.max:.1f}",
                "-" if gp is None else f"{gp.p99:.1f}",
                "-" if gp is None else f"{gp.max:.1f}",
                _ok(c),
            ]
        )
    return head, rows


def _unlinks_per_event(c: CellRecord) -> str:
    """Links removed per retirement (RCU) or per flush: what unlinking cost the policy."""
    events = c.flushes or c.retirements
    removed = c.links_removed_on_flush + c.links_removed_on_retire
    return "-" if not events else f"{removed / events:.1f}"


def _ci(c: CellRecord) -> str:
    ci = c.mips_ci
    return "-" if ci is None else f"{ci[0]:.2f}-{ci[1]:.2f}"


def table_rows(doc: DocumentLike, wide: bool = True) -> tuple[list[str], list[list[str]]]:
    """The summary table: a header and one row of strings per cell.

    ``wide=False`` keeps the columns that fit 80 columns of a terminal:
    MIPS with its 95% interval, the fraction of the baseline, the pause
    total, memory held back and the correctness check (the workload only
    when there are several).
    """
    doc = document(doc)
    if doc.scenario == "stall":
        return stall_table_rows(doc)
    several = len({c.workload for c in doc.cells}) > 1
    if wide:
        head = [
            "policy", "vCPUs", "KiB", "workload", "MIPS", "95% CI", "runs", "of base", "transl",
            "retrans", "flush/retire", "links", "unlinks/ev", "pause ms", "p99 ms", "max ms",
            "GP p99 ms", "held KiB", "retired KiB", "ok",
        ]  # fmt: skip
    else:
        head = ["policy", "vCPUs", "KiB", *(["workload"] if several else [])]
        head += ["MIPS", "95% CI", "of base", "pause ms", "held KiB", "ok"]
    rows = []
    for c in doc.cells:
        gp = c.gp_latency_ms
        where = [c.policy, str(c.vcpus), f"{c.buffer_kb:g}"]
        workload = [Path(c.workload).name]
        mips = [f"{c.mips:.2f}", _ci(c)]
        base = _fraction(c)
        pause = f"{c.pause_ms.total:.1f}"
        held = f"{c.held_back_kb:.1f}"
        if wide:
            rows.append(
                [*where, *workload, *mips, str(c.repeat), base,
                 str(c.translations), str(c.retranslations),
                 str(c.flushes or c.retirements), str(c.links_made), _unlinks_per_event(c),
                 pause, f"{c.pause_ms.p99:.2f}",
                 f"{c.pause_ms.max:.2f}", "-" if gp is None else f"{gp.p99:.3f}",
                 held, f"{c.peak_retired_kb:.1f}", _ok(c)]
            )  # fmt: skip
        else:
            rows.append([*where, *(workload if several else []), *mips, base, pause, held, _ok(c)])
    return head, rows


def comparison_rows(doc: DocumentLike) -> tuple[list[str], list[list[str]]]:
    """The comparisons as a table: one row per pair, metric and cell (pooled first)."""
    doc = document(doc)
    head = ["metric", "a", "b", "where", "a / b", "interval", "better"]
    workloads = len({c.workload for c in doc.cells})
    rows = []
    for i in comparison_items(doc):
        where = "pooled" if i.pooled else where_text(i, workloads)
        rows.append(
            [
                i.metric,
                i.a,
                i.b,
                where,
                f"{i.ratio:.3g}",
                interval_text(i.ci),
                i.winner or "tie",
            ]
        )
    return head, rows
