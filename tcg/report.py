"""Reporting a comparison: the verdict, the table, the plots and the HTML page.

A table of forty cells answers every question and none at a glance. This
module turns a comparison's JSON document into what a reader takes in
quickly: a verdict of a few points written from the document's
``comparisons`` (:func:`tcg.compare.comparisons`): rcu against flush first,
pooled over the cells under pressure and then where the winner changes, each
difference stated only where its interval excludes "no difference", ties
named as ties, and how precise the run was; then the summary table, four
plots and an HTML page that shows them. The sentences are templates, so the
verdict changes when the measurements do.

A ``stall`` comparison (see :mod:`tcg.compare`) gets its own table, with
where host calls ran and the longest waits, and a verdict sentence comparing
each policy with the calls inside guest code against outside it.

"Under pressure" means a cell whose buffer is smaller than the host code its
workload translated in the no-pressure baseline (the code does not fit), and
where the policy had to act at least once.

*Memory held back* is host code that was retired (no vCPU can start running
it any more) but whose space cannot be reused yet, while the vCPUs run: under
RCU, the retired regions waiting for a grace period. A flush retires and
reclaims the whole buffer inside one exclusive section, with every vCPU
stopped, so it holds back nothing but code invalidated since the last flush;
what it costs instead is the pause and the retranslations.

matplotlib is imported only by the plotting functions (with the Agg backend),
so the verdict and the table work without it.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tcg.compare import CONFIDENCE, comparisons, pressure_cells

__all__ = [
    "PLOTS",
    "comparison_rows",
    "failures",
    "plot_memory",
    "plot_pause_distribution",
    "plot_pause_timeline",
    "plot_throughput",
    "precision",
    "pressure_cells",
    "representative",
    "stall_sentence",
    "stall_table_rows",
    "table_rows",
    "verdict",
    "verdict_points",
    "write_report",
]

Json = dict[str, Any]


def failures(cells: Sequence[Json]) -> list[str]:
    """One line per cell that failed a correctness check (empty if none did)."""
    lines = []
    for c in cells:
        where = f"{c['policy']} vcpus={c['vcpus']} buffer={c['buffer_kb']:g} KiB {c['workload']}"
        if c.get("error"):
            lines.append(f"{where}: {c['error']}")
        if c["violations"]:
            first = (c.get("violation_messages") or [""])[0]
            lines.append(f"{where}: {c['violations']} use-after-reclaim violation(s) {first}")
        if c["output_ok"] is False and not c.get("error"):
            lines.append(f"{where}: wrong guest output")
        if c.get("faults"):
            lines.append(f"{where}: guest fault {c.get('fault')}")
    return lines


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if x >= 0.01 else f"{100 * x:.1f}%"


def _longest_wait_ms(c: Json) -> float:
    """The longest time anything waited in a cell: to quiesce, for a grace period, for space."""
    gp = c["gp_latency_ms"]
    return float(
        max(c["time_to_quiesce_ms"]["max"], 0.0 if gp is None else gp["max"], c["wait_ms"]["max"])
    )


def stall_sentence(doc: Json) -> str:
    """The stall scenario's finding: per policy, the longest wait and the throughput,
    with host calls inside guest code against outside it."""
    cells: list[Json] = doc["cells"]
    policies = list(dict.fromkeys(c["policy"] for c in cells))
    clauses = []
    for p in policies:
        mine = {
            hc: [c for c in cells if c["policy"] == p and c.get("host_calls") == hc]
            for hc in ("inside", "outside")
        }
        if not mine["inside"] or not mine["outside"]:
            continue
        wait = {hc: max(_longest_wait_ms(c) for c in cs) for hc, cs in mine.items()}
        mips = {hc: statistics.median(c["mips"] for c in cs) for hc, cs in mine.items()}
        clauses.append(
            f"{p} waited up to {wait['inside']:.1f} ms at {mips['inside']:.2f} MIPS with the "
            f"call inside, against {wait['outside']:.1f} ms at {mips['outside']:.2f} MIPS "
            f"with it outside"
        )
    if not clauses:
        return "The stall scenario needs cells with host calls both inside and outside."
    return (
        "With one vCPU asleep in long host calls (a wait being the longest time to quiesce, "
        "grace period or translator wait of any cell): " + "; ".join(clauses) + "."
    )


#: Pooled intervals wider than this (either way, in ratio) are too wide to decide.
WIDE = 0.10


def _comparisons(doc: Json) -> list[Json]:
    """The document's comparisons (computed for a document from before they were stored)."""
    items = doc.get("comparisons")
    return comparisons(doc) if items is None else list(items)


def _oriented(item: Json, first: str) -> tuple[float, list[float] | None]:
    """The item's ratio and interval as ``first`` over the other policy."""
    ci = item["ci"]
    if item["a"] == first:
        return item["ratio"], ci
    return 1.0 / item["ratio"], None if ci is None else [1.0 / ci[1], 1.0 / ci[0]]


def _winner(item: Json) -> str | None:
    better = item["better"]
    return None if better == "tie" else str(item[better])


def _interval(ci: list[float] | None) -> str:
    return "no interval" if ci is None else f"interval {ci[0]:.2f}-{ci[1]:.2f}"


def _half_width(ci: list[float] | None) -> float:
    """How far an interval reaches either side of its center, as a fraction (inf if none)."""
    if ci is None:
        return math.inf
    return math.sqrt(ci[1] / ci[0]) - 1.0


def _reach(half_width: float) -> str:
    """An interval's reach in words: +/-4% or, past doubling, a factor."""
    if half_width < 1.0:
        return f"+/-{100 * half_width:.0f}%"
    return f"a factor of {1.0 + half_width:.1f} either way"


def _where(item: Json, workloads: int) -> str:
    v = item["vcpus"]
    text = f"{v} vCPU{'s' if v != 1 else ''} and {item['buffer_kb']:g} KiB"
    return text + (f" ({Path(item['workload']).name})" if workloads > 1 else "")


def _claim(item: Json, first: str, other: str) -> str:
    """One metric of one comparison in words, from ``first``'s side."""
    ratio, ci = _oriented(item, first)
    winner = _winner(item)
    if item["metric"] == "throughput":
        figure = f"{first} ran at {ratio:.2f}x {other}'s MIPS ({_interval(ci)})"
        if winner is None:
            return f"no measurable difference in throughput at this precision: {figure}"
        return f"{winner} kept more throughput: {figure}"
    figure = (
        f"{first} cost vCPUs {ratio:.2f}x the time {other} cost them per guest instruction "
        f"({_interval(ci)})"
    )
    if winner is None:
        return f"no measurable difference in vCPU time lost at this precision: {figure}"
    return f"vCPUs lost less time to {winner}: {figure}"


def _pair_points(items: list[Json], first: str, other: str, workloads: int) -> list[str]:
    """What the comparisons of two policies say: pooled, then where the winner changes."""
    mine = [i for i in items if {i["a"], i["b"]} == {first, other}]
    pooled = {i["metric"]: i for i in mine if i["vcpus"] is None}
    points = []
    if pooled:
        n = next(iter(pooled.values()))["cells"]
        claims = [
            _claim(pooled[m], first, other) for m in ("throughput", "time_lost") if m in pooled
        ]
        points.append(
            f"{first} against {other}, over the {n} cell{'s' if n != 1 else ''} under pressure: "
            + "; ".join(claims)
            + "."
        )
    else:
        points.append(f"{first} against {other}: no cell put both under pressure.")
    for metric in ("throughput", "time_lost"):
        overall = _winner(pooled[metric]) if metric in pooled else None
        changes = [
            i
            for i in mine
            if i["metric"] == metric
            and i["vcpus"] is not None
            and _winner(i) not in (None, overall)
        ]
        if not changes:
            continue
        what = "throughput" if metric == "throughput" else "vCPU time lost"
        listed = []
        for i in changes[:6]:
            ratio, ci = _oriented(i, first)
            listed.append(f"{_winner(i)} at {_where(i, workloads)} ({ratio:.2f}x, {_interval(ci)})")
        more = f", and {len(changes) - 6} more" if len(changes) > 6 else ""
        lead = "Where the winner changes" if overall is not None else "Single cells that differ"
        points.append(f"{lead} in {what}: " + "; ".join(listed) + more + ".")
    return points


def precision(doc: Json) -> str:
    """How precise a run's comparisons were, and what to do if that is not enough."""
    items = _comparisons(doc)
    if not items:
        return "Nothing to compare: the grid has one policy, or no cell both policies ran."
    pooled = [i for i in items if i["vcpus"] is None]
    cells = [i for i in items if i["vcpus"] is not None]
    if all(i["ci"] is None for i in items):
        return "With one run per cell there are no intervals and no claims: use --repeat 3 or more."
    levels = [
        f"each {kind} one at {100 * group[0]['confidence']:.2f}%"
        for kind, group in (("pooled", pooled), ("single-cell", cells))
        if group
    ]
    text = (
        f"Precision: {100 * CONFIDENCE:.0f}% intervals for all {len(items)} comparisons "
        f"together (Bonferroni: {', '.join(levels)})"
    )
    widths = {
        "pooled": [_half_width(i["ci"]) for i in pooled if i["metric"] == "throughput"],
        "single-cell": [_half_width(i["ci"]) for i in cells if i["metric"] == "throughput"],
    }
    spans = [
        f"{name} throughput ratios {_reach(statistics.median(w))}"
        for name, w in widths.items()
        if w and statistics.median(w) < math.inf
    ]
    if spans:
        text += "; the median interval reaches " + ", ".join(spans)
    text += "."
    more = "run more rounds (--repeat 10) or longer runs (--min-run-seconds 1)"
    if not widths["pooled"] or statistics.median(widths["pooled"]) > WIDE:
        text += f" That is too wide to decide differences of a few percent: {more}."
    elif widths["single-cell"] and statistics.median(widths["single-cell"]) > 2 * WIDE:
        text += f" Single cells are told apart only by large differences: for them, {more}."
    return text


def _held_back(pressed: list[Json], policies: list[str]) -> str:
    held = {
        p: max(c.get("held_back_kb", 0.0) for c in pressed if c["policy"] == p)
        for p in policies
        if any(c["policy"] == p for c in pressed)
    }
    listed = ", ".join(f"{held[p]:.1f} KiB under {p}" for p in held)
    return (
        "Memory held back (retired code whose space cannot be reused yet: under RCU, "
        "regions waiting for a grace period; a flush reclaims while every vCPU is stopped, so "
        f"it holds back only code invalidated before it) peaked at {listed}."
    )


def verdict_points(doc: Json) -> list[str]:
    """The verdict as a list of points, rcu against flush first (see the module's docstring)."""
    cells: list[Json] = doc["cells"]
    if doc.get("scenario") == "stall":
        return [stall_sentence(doc), _correctness(doc)]
    policies = list(dict.fromkeys(c["policy"] for c in cells))
    workloads = len({c["workload"] for c in cells})
    pressed = pressure_cells(doc)
    items = _comparisons(doc)
    points: list[str] = []
    if not pressed:
        points.append(
            "No cell put the buffer under pressure (every workload's code fit, or no policy "
            "had to act), so the policies cannot be told apart on this grid."
        )
    else:
        pairs = list(itertools.combinations(policies, 2))
        if {"rcu", "flush"} <= set(policies):
            pairs = [("rcu", "flush")] + [ab for ab in pairs if set(ab) != {"rcu", "flush"}]
        for a, b in pairs:
            points += _pair_points(items, a, b, workloads)
        points.append(_held_back(pressed, policies))
    relaxed = [c for c in cells if c not in pressed and c.get("baseline_fraction")]
    if relaxed:
        points.append(
            f"Where the code fit ({len(relaxed)} cells), the policies ran at a median "
            f"{_pct(statistics.median(c['baseline_fraction'] for c in relaxed))} of their "
            "no-pressure baselines."
        )
    points.append(precision(doc))
    points.append(_correctness(doc))
    return points


def verdict(doc: Json) -> str:
    """The verdict of :func:`verdict_points` as one paragraph."""
    return " ".join(verdict_points(doc))


def _correctness(doc: Json) -> str:
    records = [*doc["cells"], *doc.get("baselines", [])]
    bad = failures(records)
    if bad:
        return f"{len(bad)} cell(s) FAILED a correctness check (see above)."
    runs = sum(len(c["runs"]) if "runs" in c else c.get("repeat", 1) for c in records)
    return (
        f"All {runs} runs were correct (baselines included): the guest output matched, no "
        "fault, no use of reclaimed code."
        if runs != 1
        else "The run was correct: the guest output matched, no fault, no use of reclaimed code."
    )


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
    for i in _comparisons(doc):
        where = "pooled" if i["vcpus"] is None else _where(i, workloads)
        better = {"a": i["a"], "b": i["b"], "tie": "tie"}[i["better"]]
        rows.append(
            [i["metric"], i["a"], i["b"], where, f"{i['ratio']:.3g}", _interval(i["ci"]), better]
        )
    return head, rows


# ----------------------------------------------------------------------
# Plots

_COLORS = {
    "rcu": "tab:blue",
    "rcu-qsbr": "tab:green",
    "rcu-sync": "tab:cyan",
    "rcu-batch": "tab:purple",
    "flush": "tab:red",
}
_EXTRA = ["tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:gray", "tab:olive"]


def _color(policy: str, policies: Sequence[str]) -> str:
    if policy in _COLORS:
        return _COLORS[policy]
    others = [p for p in policies if p not in _COLORS]
    return _EXTRA[others.index(policy) % len(_EXTRA)]


_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _marker(policy: str, policies: Sequence[str]) -> str:
    """A marker of its own per policy, so overlapping lines stay apart."""
    return _MARKERS[list(policies).index(policy) % len(_MARKERS)]


def _label(policy: str) -> str:
    return policy.rsplit(":", 1)[-1] if ":" in policy else policy


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def representative(doc: Json) -> list[Json]:
    """Per policy, the cell the timelines show: most vCPUs, then the smallest buffer.

    The first workload only; the smallest buffer is where the policies act most.
    """
    cells: list[Json] = doc["cells"]
    workload = cells[0]["workload"]
    out = []
    for policy in dict.fromkeys(c["policy"] for c in cells):
        mine = [c for c in cells if c["policy"] == policy and c["workload"] == workload]
        out.append(max(mine, key=lambda c: (c["vcpus"], -c["buffer_kb"])))
    return out


def plot_pause_timeline(doc: Json, path: Path) -> None:
    """When each vCPU was stopped or waiting because of the policy, one panel per policy."""
    plt = _pyplot()
    cells = representative(doc)
    policies = [c["policy"] for c in cells]
    # Each panel gets room for its rows: 1.1 in. up to 4 vCPUs, more beyond.
    rows = max(c["vcpus"] for c in cells)
    panel = 1.1 * max(1.0, rows / 4)
    fig, axes = plt.subplots(len(cells), 1, figsize=(10, 1.2 + panel * len(cells)), squeeze=False)
    end = max([c["seconds"] for c in cells] + [1e-3])
    for ax, c in zip(axes[:, 0], cells, strict=True):
        color = _color(c["policy"], policies)
        vcpus = c["vcpus"]
        shown = sum(len(v) for v in c["stops"].values())
        for v in range(vcpus):
            spans = [(s, e - s) for s, e in c["stops"].get(str(v), [])]
            ax.broken_barh(spans, (v - 0.35, 0.7), facecolors=color, edgecolors=color, lw=0.6)
        ax.set_yticks(range(vcpus), [f"vCPU {v}" for v in range(vcpus)])
        ax.set_ylim(-0.6, vcpus - 0.4)
        ax.set_xlim(0, end)
        ax.invert_yaxis()
        ax.set_title(
            f"{_label(c['policy'])}: {vcpus} vCPUs, {c['buffer_kb']:g} KiB buffer, "
            f"{Path(c['workload']).name}; {c['pause_ms']['count']} pauses, "
            f"{c['pause_ms']['total']:.1f} ms in all"
            + (f" (the first {shown} shown)" if shown < c["pause_ms"]["count"] else ""),
            fontsize=9,
            loc="left",
        )
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("time since the machine started (s)")
    fig.suptitle("When each vCPU was stopped or waiting because of the policy (one run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_memory(doc: Json, path: Path) -> None:
    """Live host code and memory held back over time, one panel per policy.

    Lines join the samples (not steps): the buffer samples itself when
    regions change state and the probe whenever a translator found it full,
    so between two samples the buffer filled with new translations, as the
    rising lines show.
    """
    plt = _pyplot()
    cells = representative(doc)
    fig, axes = plt.subplots(
        len(cells), 1, figsize=(10, 1.2 + 1.6 * len(cells)), squeeze=False, sharex=True
    )
    for ax, c in zip(axes[:, 0], cells, strict=True):
        t = [p[0] for p in c["timeline"]]
        ax.plot(t, [p[1] / 1024 for p in c["timeline"]], label="live", color="k", lw=0.8)
        ax.plot(
            t,
            [p[2] / 1024 for p in c["timeline"]],
            label="held back (retired, space\nnot reusable yet)",
            color="tab:orange",
            lw=0.8,
        )
        ax.axhline(c["buffer_kb"], ls=":", color="gray", label="buffer size")
        ax.set_ylabel("KiB")
        ax.set_title(
            f"{_label(c['policy'])}: {c['vcpus']} vCPUs, {c['buffer_kb']:g} KiB buffer, "
            f"{Path(c['workload']).name}; held back at most {c.get('held_back_kb', 0.0):.1f} KiB"
            + ("" if t else " (no samples: the buffer never changed state)"),
            fontsize=9,
            loc="left",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    axes[-1, 0].set_xlabel("time since the machine started (s)")
    fig.suptitle("Host-code bytes over time (one execution per policy)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_throughput(doc: Json, path: Path) -> None:
    """Throughput as a fraction of the no-pressure baseline versus buffer size."""
    plt = _pyplot()
    cells: list[Json] = doc["cells"]
    vcpus = sorted({c["vcpus"] for c in cells})
    policies = list(dict.fromkeys(c["policy"] for c in cells))
    workloads = list(dict.fromkeys(c["workload"] for c in cells))
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(
        1, len(vcpus), figsize=(3.6 * len(vcpus) + 1, 4), squeeze=False, sharey=True
    )
    for ax, n in zip(axes[0], vcpus, strict=True):
        for policy in policies:
            for i, w in enumerate(workloads):
                mine = sorted(
                    (
                        c
                        for c in cells
                        if (c["policy"], c["vcpus"], c["workload"]) == (policy, n, w)
                    ),
                    key=lambda c: c["buffer_kb"],
                )
                label = _label(policy) + (f" ({Path(w).name})" if len(workloads) > 1 else "")
                y = [100 * c["baseline_fraction"] for c in mine]
                # The cell's 95% interval of MIPS, over the baseline's median.
                low, high = [], []
                for c, v in zip(mine, y, strict=True):
                    ci, base = c.get("mips_ci"), c.get("baseline_mips") or 0.0
                    lo, hi = (v, v)
                    if ci is not None and base:
                        lo, hi = 100 * ci[0] / base, 100 * ci[1] / base
                    low.append(max(0.0, v - lo))
                    high.append(max(0.0, hi - v))
                ax.errorbar(
                    [c["buffer_kb"] for c in mine],
                    y,
                    yerr=[low, high],
                    capsize=3,
                    marker=_marker(policy, policies),
                    ls=styles[i % len(styles)],
                    color=_color(policy, policies),
                    label=label,
                )
        ax.axhline(100, color="gray", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        sizes = sorted({c["buffer_kb"] for c in cells})
        ax.set_xticks(sizes, [f"{kb:g}" for kb in sizes])
        ax.minorticks_off()
        ax.set_xlabel("translation buffer (KiB, log scale)")
        ax.set_title(f"{n} vCPU{'s' if n > 1 else ''}")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("throughput, % of no-pressure baseline")
    axes[0, -1].legend(fontsize=8)
    fig.suptitle(
        "Throughput under buffer pressure (median MIPS / baseline MIPS, with 95% intervals)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pause_distribution(doc: Json, path: Path) -> None:
    """Pause p50, p99 and max versus vCPU count, per policy, at the smallest buffer."""
    plt = _pyplot()
    cells: list[Json] = doc["cells"]
    workload = cells[0]["workload"]
    smallest = min(c["buffer_kb"] for c in cells)
    policies = list(dict.fromkeys(c["policy"] for c in cells))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharey=True)
    for ax, stat in zip(axes, ("p50", "p99", "max"), strict=True):
        for policy in policies:
            mine = sorted(
                (
                    c
                    for c in cells
                    if c["policy"] == policy
                    and c["buffer_kb"] == smallest
                    and c["workload"] == workload
                ),
                key=lambda c: c["vcpus"],
            )
            ax.plot(
                [c["vcpus"] for c in mine],
                [c["pause_ms"][stat] for c in mine],
                marker=_marker(policy, policies),
                markersize=7,
                fillstyle="none",
                color=_color(policy, policies),
                label=_label(policy),
            )
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_xticks(sorted({c["vcpus"] for c in cells}))
        ax.set_xlabel("vCPUs")
        ax.set_title(f"{stat} pause")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pause per vCPU stop (ms, log scale)")
    axes[-1].legend(fontsize=8)
    fig.suptitle(
        f"Pauses caused by the policy vs vCPU count ({smallest:g} KiB buffer, "
        f"{Path(workload).name})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: The report's plots: file name, function, caption.
PLOTS: list[tuple[str, Any, str]] = [
    (
        "throughput.png",
        plot_throughput,
        "Median throughput of each cell as a percentage of the no-pressure baseline "
        "(same workload and vCPU count, a buffer so large nothing is retired), against the "
        "buffer size; one panel per vCPU count, one line per policy. The bars are the cell's "
        "95% interval over the baseline's median (the baseline's own uncertainty is not "
        "included).",
    ),
    (
        "pause_timeline.png",
        plot_pause_timeline,
        "For one execution per policy (the most vCPUs, the smallest buffer), the intervals each "
        "vCPU spent outside guest code because of the policy: its own waits for translation "
        "space, and, for a policy that stops the world, its time outside guest code during "
        "another vCPU's wait, clipped to that wait (stopped for the flush). System calls and "
        "atomic steps alone are left out. Only the first intervals of each vCPU are kept in "
        "the JSON.",
    ),
    (
        "memory.png",
        plot_memory,
        "Host-code bytes of the same executions over time: live (published translations) and "
        "held back (retired, so no vCPU can start running it, but its space not reusable yet: "
        "under RCU until a grace period ends; a flush reclaims while every vCPU is stopped, so "
        "its line stays at zero unless code was invalidated). Sampled whenever regions change "
        "state and whenever a translator finds the buffer full; lines join the samples.",
    ),
    (
        "pauses.png",
        plot_pause_distribution,
        "The distribution of those pauses (p50, p99, max per cell) against the vCPU count, "
        "at the smallest buffer, one marker per policy. Zero means no pause was recorded.",
    ),
]


def write_report(doc: Json, directory: Path) -> list[Path]:
    """Write ``results.json``, the PNG plots and ``index.html`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "results.json"]
    written[0].write_text(json.dumps(doc, indent=1) + "\n")
    for name, plot, _ in PLOTS:
        plot(doc, directory / name)
        written.append(directory / name)
    index = directory / "index.html"
    index.write_text(_html(doc))
    written.append(index)
    return written


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    e = html.escape
    out = "<table>\n<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>\n"
    for r in rows:
        cls = ' class="bad"' if r[-1] == "NO" else ""
        out += f"<tr{cls}>" + "".join(f"<td>{e(x)}</td>" for x in r) + "</tr>\n"
    return out + "</table>"


def _html(doc: Json) -> str:
    e = html.escape
    figures = "\n".join(
        f'<figure><img src="{e(name)}" alt="{e(name)}"><figcaption>{e(caption)}</figcaption>'
        "</figure>"
        for name, _, caption in PLOTS
    )
    m = doc["machine"]
    config = {k: v for k, v in doc.get("config", {}).items() if k != "expect"}
    settings = _html_table(
        ["setting", "value"],
        [[k, ", ".join(map(str, v)) if isinstance(v, list) else str(v)] for k, v in config.items()],
    )
    bad = failures(doc["cells"])
    problems = "".join(f"<li>{e(line)}</li>" for line in bad)
    points = "".join(f"<li>{e(point)}</li>" for point in verdict_points(doc))
    cells = _html_table(*table_rows(doc, wide=True))
    compared = _html_table(*comparison_rows(doc))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rcu-compare report</title>
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
tr.bad {{ background: #fdd; }}
img {{ max-width: 100%; }}
figure {{ margin: 2em 0; }}
figcaption, .meta {{ color: #444; font-size: 0.9em; }}
</style></head><body>
<h1>rcu-compare</h1>
<p class="meta">Python {e(str(m.get("python")))} ({e(str(m.get("implementation")))}),
{e(str(m.get("platform")))}, {e(str(m.get("cpu_count")))} CPUs, {e(str(m.get("date")))}.</p>
<h2>Verdict</h2>
<ul>{points}</ul>
{"<h2>Failures</h2><ul>" + problems + "</ul>" if bad else ""}
<h2>Settings</h2>
{settings}
<h2>Cells</h2>
{cells}
<p class="meta">MIPS: guest instructions per second (millions), the median run; 95% CI: the
95% interval of the cell's typical (geometric mean) MIPS; runs: runs of the cell; of base: MIPS
over the no-pressure baseline's; transl / retrans: blocks translated / translated again;
flush/retire: flushes or region retirements; pause: vCPU time stopped or waiting because of the
policy (total, p99, max); GP p99: grace-period latency; held KiB: peak memory held back (retired,
space not reusable yet); retired KiB: peak retired, counting a flush's whole buffer inside its
stop; ok: output matched, no violation, no fault. Counts and pauses are the median run's.</p>
<h2>Comparisons</h2>
{compared}
<p class="meta">a / b: a's value over b's, the geometric mean of paired runs (pooled: over the
cells under pressure); interval: its interval, all of them together at 95% (Bonferroni); better:
the policy the interval favours (higher throughput, less vCPU time lost), or tie.</p>
<h2>Plots</h2>
{figures}
</body></html>
"""
