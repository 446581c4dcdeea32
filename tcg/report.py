"""Reporting a comparison: the verdict, the table, the plots and the HTML page.

A table of forty cells answers every question and none at a glance. This
module turns a comparison's JSON document into what a reader takes in
quickly: a verdict of one paragraph (which policy kept the most throughput
when the buffer was too small, which stopped vCPUs the least, which held the
most memory back, which threw the most work away, and by how much), the
summary table, four plots and an HTML page that shows them. Every number is
computed from the cells; the sentences are templates, so the verdict changes
when the measurements do.

A ``stall`` comparison (see :mod:`tcg.compare`) gets its own table, with
where host calls ran and the longest waits, and a verdict sentence comparing
each policy with the calls inside guest code against outside it.

"Under pressure" means a cell whose buffer is smaller than the host code its
workload translated in the no-pressure baseline (the code does not fit), and
where the policy had to act at least once.

matplotlib is imported only by the plotting functions (with the Agg backend),
so the verdict and the table work without it.
"""

from __future__ import annotations

import html
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PLOTS",
    "failures",
    "plot_memory",
    "plot_pause_distribution",
    "plot_pause_timeline",
    "plot_throughput",
    "pressure_cells",
    "representative",
    "stall_sentence",
    "stall_table_rows",
    "table_rows",
    "verdict",
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


def pressure_cells(doc: Json) -> list[Json]:
    """The cells whose workload's code did not fit in the buffer and where the policy acted."""
    fits: dict[tuple[str, int], float] = {}
    for b in doc.get("baselines", []):
        key = (b["workload"], b["vcpus"])
        fits[key] = max(fits.get(key, 0.0), b["peak_live_kb"])
    out = []
    for c in doc["cells"]:
        code_kb = fits.get((c["workload"], c["vcpus"]), 0.0)
        if c["buffer_kb"] < code_kb and (c["retirements"] or c["flushes"]):
            out.append(c)
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if x >= 0.01 else f"{100 * x:.1f}%"


def _ratio(a: float, b: float) -> str:
    if b <= 0:
        return "infinitely"
    r = a / b
    return f"{r:.1f}x" if r < 10 else f"{r:.0f}x"


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


def verdict(doc: Json) -> str:
    """A paragraph on who won what, by how much, from the cells of ``doc``."""
    cells: list[Json] = doc["cells"]
    if doc.get("scenario") == "stall":
        return " ".join([stall_sentence(doc), _correctness(cells)])
    policies = list(dict.fromkeys(c["policy"] for c in cells))
    pressed = pressure_cells(doc)
    parts: list[str] = []
    if not pressed:
        parts.append(
            "No cell put the buffer under pressure (every workload's code fit, or no policy "
            "had to act), so the policies cannot be told apart on this grid."
        )
    else:
        by: dict[str, list[Json]] = {p: [c for c in pressed if c["policy"] == p] for p in policies}
        by = {p: cs for p, cs in by.items() if cs}
        frac = {p: statistics.median(c["baseline_fraction"] for c in cs) for p, cs in by.items()}
        best = max(frac, key=lambda p: frac[p])
        worst = min(frac, key=lambda p: frac[p])
        sizes = sorted({c["buffer_kb"] for c in pressed})
        n = len(pressed)
        text = (
            f"Under pressure ({n} cells with buffers of {', '.join(f'{s:g}' for s in sizes)} KiB, "
            f"smaller than the code), {best} kept the most throughput: a median "
            f"{_pct(frac[best])} of the no-pressure baseline"
        )
        if worst != best:
            text += (
                f", against {_pct(frac[worst])} for {worst} "
                f"({_ratio(frac[best], frac[worst])} more)"
            )
        parts.append(text + ".")
        # Where the winner depends on the buffer size, say so.
        winners = {}
        for s in sizes:
            here = [c for c in pressed if c["buffer_kb"] == s]
            per = {
                p: statistics.median(c["baseline_fraction"] for c in here if c["policy"] == p)
                for p in by
                if any(c["policy"] == p for c in here)
            }
            if len(per) > 1:
                winners[s] = max(per, key=lambda p: per[p])
        if len(set(winners.values())) > 1:
            parts.append(
                "The winner depends on the buffer: "
                + "; ".join(f"at {s:g} KiB {p} led" for s, p in winners.items())
                + "."
            )
        pause_max = {p: max(c["pause_ms"]["max"] for c in cs) for p, cs in by.items()}
        pause_total = {p: sum(c["pause_ms"]["total"] for c in cs) for p, cs in by.items()}
        calm = min(pause_total, key=lambda p: pause_total[p])
        rough = max(pause_total, key=lambda p: pause_total[p])
        if calm != rough:
            parts.append(
                f"vCPUs lost the least time to {calm}: {pause_total[calm]:.1f} ms stopped or "
                f"waiting in all, longest {pause_max[calm]:.2f} ms, against "
                f"{pause_total[rough]:.1f} ms (longest {pause_max[rough]:.2f} ms) under {rough}."
            )
        retrans = {p: sum(c["retranslations"] for c in cs) for p, cs in by.items()}
        lean = min(retrans, key=lambda p: retrans[p])
        waste = max(retrans, key=lambda p: retrans[p])
        if lean != waste:
            parts.append(
                f"{waste} translated code again {retrans[waste]} times, "
                f"{_ratio(retrans[waste], retrans[lean])} as often as {lean} ({retrans[lean]})."
            )
        held = {p: max(c["peak_retired_kb"] for c in cs) for p, cs in by.items()}
        least = min(held, key=lambda p: held[p])
        most = max(held, key=lambda p: held[p])
        if least != most:
            parts.append(
                f"Memory retired but not yet reclaimed peaked at {held[most]:.1f} KiB under "
                f"{most} and {held[least]:.1f} KiB under {least}."
            )
    relaxed = [c for c in cells if c not in pressed and c.get("baseline_fraction")]
    if relaxed:
        parts.append(
            f"Where the code fit, every policy ran at a median "
            f"{_pct(statistics.median(c['baseline_fraction'] for c in relaxed))} of the baseline."
        )
    parts.append(_correctness(cells))
    return " ".join(parts)


def _correctness(cells: Sequence[Json]) -> str:
    bad = failures(cells)
    if bad:
        return f"{len(bad)} cell(s) FAILED a correctness check (see above)."
    runs = sum(c.get("repeat", 1) for c in cells)
    return (
        f"All {runs} runs were correct: the guest output matched, no fault, "
        "no use of reclaimed code."
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


def table_rows(doc: Json) -> tuple[list[str], list[list[str]]]:
    """The summary table: a header and one row of strings per cell."""
    if doc.get("scenario") == "stall":
        return stall_table_rows(doc)
    head = [
        "policy", "vCPUs", "KiB", "workload", "MIPS", "±", "of base", "transl", "retrans",
        "flush/retire", "pause ms", "p99 ms", "max ms", "GP p99 ms", "retired KiB", "ok",
    ]  # fmt: skip
    rows = []
    for c in doc["cells"]:
        spread = c["mips_spread"]
        gp = c["gp_latency_ms"]
        ok = {True: "yes", False: "NO", None: "?"}[c["output_ok"]]
        if c["violations"] or c.get("faults") or c.get("error"):
            ok = "NO"
        rows.append(
            [
                c["policy"],
                str(c["vcpus"]),
                f"{c['buffer_kb']:g}",
                Path(c["workload"]).name,
                f"{c['mips']:.2f}",
                f"{(spread['max'] - spread['min']) / 2:.2f}",
                f"{100 * c['baseline_fraction']:.0f}%",
                str(c["translations"]),
                str(c["retranslations"]),
                str(c["flushes"] or c["retirements"]),
                f"{c['pause_ms']['total']:.1f}",
                f"{c['pause_ms']['p99']:.2f}",
                f"{c['pause_ms']['max']:.2f}",
                "-" if gp is None else f"{gp['p99']:.3f}",
                f"{c['peak_retired_kb']:.1f}",
                ok,
            ]
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
    """Live and retired-not-reclaimed host-code bytes over time, one panel per policy."""
    plt = _pyplot()
    cells = representative(doc)
    fig, axes = plt.subplots(
        len(cells), 1, figsize=(10, 1.2 + 1.6 * len(cells)), squeeze=False, sharex=True
    )
    for ax, c in zip(axes[:, 0], cells, strict=True):
        t = [p[0] for p in c["timeline"]]
        ax.step(t, [p[1] / 1024 for p in c["timeline"]], where="post", label="live", color="k")
        ax.step(
            t,
            [p[2] / 1024 for p in c["timeline"]],
            where="post",
            label="retired, not yet reclaimed",
            color="tab:orange",
        )
        ax.axhline(c["buffer_kb"], ls=":", color="gray", label="buffer size")
        ax.set_ylabel("KiB")
        ax.set_title(
            f"{_label(c['policy'])}: {c['vcpus']} vCPUs, {c['buffer_kb']:g} KiB buffer, "
            f"{Path(c['workload']).name}"
            + ("" if t else " (no samples: the buffer never changed state)"),
            fontsize=9,
            loc="left",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    axes[-1, 0].set_xlabel("time since the machine started (s)")
    fig.suptitle("Host-code bytes over time (one run per policy)")
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
                ax.plot(
                    [c["buffer_kb"] for c in mine],
                    [100 * c["baseline_fraction"] for c in mine],
                    marker="o",
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
    fig.suptitle("Throughput under buffer pressure (median MIPS / baseline MIPS)")
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
                marker="o",
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
        "buffer size; one panel per vCPU count, one line per policy.",
    ),
    (
        "pause_timeline.png",
        plot_pause_timeline,
        "For one run per policy (the most vCPUs, the smallest buffer), the intervals each "
        "vCPU spent outside guest code because of the policy: its own waits for translation "
        "space, and, for a policy that stops the world, its time outside guest code during "
        "another vCPU's wait, clipped to that wait (stopped for the flush). System calls and "
        "atomic steps alone are left out. Only the first intervals of each vCPU are kept in "
        "the JSON.",
    ),
    (
        "memory.png",
        plot_memory,
        "Host-code bytes of the same runs over time: live (published translations) and "
        "retired but not yet reclaimed (waiting for a grace period, or for the flush). "
        "Sampled whenever the buffer changes state.",
    ),
    (
        "pauses.png",
        plot_pause_distribution,
        "The distribution of those pauses (p50, p99, max per cell) against the vCPU count, "
        "at the smallest buffer. Zero means no pause was recorded.",
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


def _html(doc: Json) -> str:
    e = html.escape
    head, rows = table_rows(doc)
    table = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>\n"
    for r in rows:
        cls = ' class="bad"' if r[-1] == "NO" else ""
        table += f"<tr{cls}>" + "".join(f"<td>{e(x)}</td>" for x in r) + "</tr>\n"
    figures = "\n".join(
        f'<figure><img src="{e(name)}" alt="{e(name)}"><figcaption>{e(caption)}</figcaption>'
        "</figure>"
        for name, _, caption in PLOTS
    )
    m = doc["machine"]
    config = {k: v for k, v in doc.get("config", {}).items() if k != "expect"}
    bad = failures(doc["cells"])
    problems = "".join(f"<li>{e(line)}</li>" for line in bad)
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
{e(str(m.get("platform")))}, {e(str(m.get("cpu_count")))} CPUs, {e(str(m.get("date")))}.<br>
Settings: {e(json.dumps(config))}</p>
<h2>Verdict</h2>
<p>{e(verdict(doc))}</p>
{"<h2>Failures</h2><ul>" + problems + "</ul>" if bad else ""}
<h2>Cells (median of each)</h2>
<table>
{table}</table>
<p class="meta">MIPS: guest instructions per second (millions), the median run; ±: half the
range over the runs; of base: MIPS over the no-pressure baseline's; transl / retrans: blocks
translated / translated again; flush/retire: flushes or region retirements; pause: vCPU time
stopped or waiting because of the policy (total, p99, max); GP p99: grace-period latency;
retired KiB: peak host code retired but not yet reclaimed; ok: output matched, no violation,
no fault.</p>
<h2>Plots</h2>
{figures}
</body></html>
"""
