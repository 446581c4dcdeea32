"""The tables of a report: the cells, the stall scenario's cells, the comparisons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tcg.report.verdict import comparison_items, interval_text, where_text

Json = dict[str, Any]


def _ok(c: Json) -> str:
    ok = {True: "yes", False: "NO", None: "?"}[c["output_ok"]]
    return "NO" if c["violations"] or c.get("faults") or c.get("error") else ok


def stall_table_rows(doc: Json) -> tuple[list[str], list[list[str]]]:
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
    for c in doc["cells"]:
        gp = c["gp_latency_ms"]
        rows.append(
            [
                c["policy"],
                str(c["vcpus"]),
                f"{c['buffer_kb']:g}",
                Path(c["workload"]).name,
                c.get("host_calls", "outside"),
                f"{c['mips']:.2f}",
                f"{100 * c['baseline_fraction']:.0f}%",
                str(c["flushes"] or c["retirements"]),
                f"{c['pause_ms']['max']:.1f}",
                f"{c['pause_ms']['p99']:.1f}",
                f"{c['wait_ms']['max']:.1f}",
                f"{c['time_to_quiesce_ms']['max']:.1f}",
                "-" if gp is None else f"{gp['p99']:.1f}",
                "-" if gp is None else f"{gp['max']:.1f}",
                _ok(c),
            ]
        )
    return head, rows


def _ci(c: Json) -> str:
    ci = c.get("mips_ci")
    return "-" if ci is None else f"{ci[0]:.2f}-{ci[1]:.2f}"


def table_rows(doc: Json, wide: bool = True) -> tuple[list[str], list[list[str]]]:
    """The summary table: a header and one row of strings per cell.

    ``wide=False`` keeps the columns that fit 80 columns of a terminal:
    MIPS with its 95% interval, the fraction of the baseline, the pause
    total, memory held back and the correctness check (the workload only
    when there are several).
    """
    if doc.get("scenario") == "stall":
        return stall_table_rows(doc)
    several = len({c["workload"] for c in doc["cells"]}) > 1
    if wide:
        head = [
            "policy", "vCPUs", "KiB", "workload", "MIPS", "95% CI", "runs", "of base", "transl",
            "retrans", "flush/retire", "pause ms", "p99 ms", "max ms", "GP p99 ms", "held KiB",
            "retired KiB", "ok",
        ]  # fmt: skip
    else:
        head = ["policy", "vCPUs", "KiB", *(["workload"] if several else [])]
        head += ["MIPS", "95% CI", "of base", "pause ms", "held KiB", "ok"]
    rows = []
    for c in doc["cells"]:
        gp = c["gp_latency_ms"]
        where = [c["policy"], str(c["vcpus"]), f"{c['buffer_kb']:g}"]
        workload = [Path(c["workload"]).name]
        mips = [f"{c['mips']:.2f}", _ci(c)]
        base = f"{100 * c['baseline_fraction']:.0f}%"
        pause = f"{c['pause_ms']['total']:.1f}"
        held = f"{c.get('held_back_kb', 0.0):.1f}"
        if wide:
            rows.append(
                [*where, *workload, *mips, str(c.get("repeat", 1)), base,
                 str(c["translations"]), str(c["retranslations"]),
                 str(c["flushes"] or c["retirements"]), pause, f"{c['pause_ms']['p99']:.2f}",
                 f"{c['pause_ms']['max']:.2f}", "-" if gp is None else f"{gp['p99']:.3f}",
                 held, f"{c['peak_retired_kb']:.1f}", _ok(c)]
            )  # fmt: skip
        else:
            rows.append([*where, *(workload if several else []), *mips, base, pause, held, _ok(c)])
    return head, rows


def comparison_rows(doc: Json) -> tuple[list[str], list[list[str]]]:
    """The comparisons as a table: one row per pair, metric and cell (pooled first)."""
    head = ["metric", "a", "b", "where", "a / b", "interval", "better"]
    workloads = len({c["workload"] for c in doc["cells"]})
    rows = []
    for i in comparison_items(doc):
        where = "pooled" if i["vcpus"] is None else where_text(i, workloads)
        better = {"a": i["a"], "b": i["b"], "tie": "tie"}[i["better"]]
        rows.append(
            [
                i["metric"],
                i["a"],
                i["b"],
                where,
                f"{i['ratio']:.3g}",
                interval_text(i["ci"]),
                better,
            ]
        )
    return head, rows
