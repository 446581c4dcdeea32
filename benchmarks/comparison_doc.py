"""Regenerate ``docs/comparison.md``: the documented comparison, measured, not typed.

Run as ``python benchmarks/comparison_doc.py`` (about four minutes on two
cores). It runs four measurements in this process, one after the other:

* ``pressure``: ``rcu``, ``rcu-qsbr`` and ``flush`` on the ``parallel``
  workload, 1, 2, 4 and 8 vCPUs, buffers from a fifth of its code to more
  than all of it (what ``rcu-compare`` runs by default, plus 8 vCPUs);
* ``batching``: ``rcu-sync`` (a grace period per retirement, waited for by
  the translator), ``rcu`` (one region in flight) and ``rcu-batch`` (up to
  four regions share a grace period) on the same grid, 1, 2 and 4 vCPUs;
* ``stall``: ``rcu-compare --scenario stall`` (one vCPU asleep in 100 ms host
  calls, inside guest code and outside it);
* ``quiesce``: the time an exclusive section waits for busy vCPUs that check
  for exit requests every K loop iterations (``benchmarks/quiescent.py``).

It stores each result as JSON in ``docs/comparison/`` with the plots of the
pressure run, then writes the page: the tables, the plots, and for each of
five shapes the literature predicts whether this measurement shows it, with
the figure, computed from the JSON. ``--from-json`` rewrites the page from
the stored results without measuring again; ``--quick`` runs a tiny grid
into a scratch directory (to check the script, not to publish).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.quiescent import bench_quiesce
from tcg.compare import Settings, run_comparison
from tcg.report import (
    PLOTS,
    pressure_cells,
    representative,
    stall_sentence,
    table_rows,
    verdict,
)

Json = dict[str, Any]

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "comparison.md"
DATA = ROOT / "docs" / "comparison"

#: The measurements behind the page (``--quick`` shrinks them).
RUNS: dict[str, Settings] = {
    "pressure": Settings(
        policies=("rcu", "rcu-qsbr", "flush"),
        vcpus=(1, 2, 4, 8),
        buffer_kb=(32.0, 64.0, 128.0, 256.0),
        workloads=("parallel",),
        seconds=10.0,
        repeat=5,
    ),
    "batching": Settings(
        policies=("rcu-sync", "rcu", "rcu-batch"),
        vcpus=(1, 2, 4),
        buffer_kb=(32.0, 64.0, 128.0),
        workloads=("parallel",),
        seconds=10.0,
        repeat=3,
    ),
    "stall": Settings(
        policies=("rcu", "rcu-qsbr", "flush"),
        vcpus=(2, 4),
        buffer_kb=(32.0,),
        workloads=("stall",),
        seconds=5.0,
        repeat=3,
        scenario="stall",
    ),
}
QUIESCE_VCPUS = (1, 2, 4, 8)
QUIESCE_KS = (10, 1_000, 10_000)
QUIESCE_SECTIONS = 30


def _quick(s: Settings) -> Settings:
    return Settings(
        policies=s.policies,
        vcpus=s.vcpus[:2],
        buffer_kb=tuple(dict.fromkeys(s.buffer_kb[:1] + s.buffer_kb[-1:])),
        workloads=s.workloads,
        seconds=s.seconds,
        repeat=1,
        scenario=s.scenario,
    )


def measure(out: Path, quick: bool) -> None:
    """Run every measurement and store it under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name, settings in RUNS.items():
        settings = _quick(settings) if quick else settings
        start = time.perf_counter()
        doc = run_comparison(settings)
        print(f"{name}: {len(doc['cells'])} cells in {time.perf_counter() - start:.0f} s")
        (out / f"{name}.json").write_text(json.dumps(_slim(doc, plots=name == "pressure")) + "\n")
    rows = []
    for vcpus in QUIESCE_VCPUS[:2] if quick else QUIESCE_VCPUS:
        for k in QUIESCE_KS:
            runs = [bench_quiesce(vcpus, k, QUIESCE_SECTIONS) for _ in range(1 if quick else 3)]
            p50, p90 = (statistics.median(r[i] for r in runs) / 1e3 for i in range(2))
            rows.append({"vcpus": vcpus, "k": k, "p50_us": p50, "p90_us": p90})
    (out / "quiesce.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("quiesce: done")


def _slim(doc: Json, plots: bool) -> Json:
    """``doc`` small enough to keep in the repository.

    Per-run timelines and pause intervals are kept only for the cells the
    plots draw; numbers keep six significant digits.
    """
    drawn = {id(c) for c in representative(doc)} if plots else set()
    for c in doc["cells"]:
        if id(c) not in drawn:
            c["timeline"], c["stops"] = [], {}
    slim: Json = _rounded(doc)
    return slim


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


# ----------------------------------------------------------------------
# The five shapes, judged from the data


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _by(cells: Sequence[Json], key: str) -> dict[Any, list[Json]]:
    groups: dict[Any, list[Json]] = {}
    for c in cells:
        groups.setdefault(c[key], []).append(c)
    return dict(sorted(groups.items()))


def _grows(values: Sequence[float]) -> bool:
    """Non-decreasing within 20 % noise at every step, and at least doubled overall."""
    steps_ok = all(b >= 0.8 * a for a, b in itertools.pairwise(values))
    return len(values) > 1 and steps_ok and values[-1] >= 2 * max(values[0], 1e-9)


def shape_pause_grows(pressure: Json, quiesce: list[Json], stall: Json) -> tuple[str, str]:
    """(1) A stop-the-world pause grows with vCPUs and with the run between exit checks."""
    flush = [c for c in pressure_cells(pressure) if c["policy"] == "flush"]
    by_vcpus = _by(flush, "vcpus")
    p99 = [_median([c["pause_ms"]["p99"] for c in cs]) for cs in by_vcpus.values()]
    peak = [_median([c["pause_ms"]["max"] for c in cs]) for cs in by_vcpus.values()]
    vcpu_list = ", ".join(
        f"{v}: {a:.2f} / {b:.1f}" for v, a, b in zip(by_vcpus, p99, peak, strict=True)
    )
    ks = sorted({r["k"] for r in quiesce})
    per_k = {k: _median([r["p50_us"] for r in quiesce if r["k"] == k]) for k in ks}
    k_list = ", ".join(f"K={k}: {per_k[k]:.0f} us" for k in ks)
    stall_flush = [c for c in stall["cells"] if c["policy"] == "flush"]
    quiesce_at = {
        hc: max((c["time_to_quiesce_ms"]["max"] for c in stall_flush if c["host_calls"] == hc),
                default=0.0)
        for hc in ("inside", "outside")
    }  # fmt: skip
    vcpus_hold = _grows(p99) or _grows(peak)
    k_hold = _grows([per_k[k] for k in ks])
    stall_hold = quiesce_at["inside"] > 10 * max(quiesce_at["outside"], 0.01)
    status = "reproduced" if vcpus_hold and k_hold and stall_hold else "partly reproduced"
    text = (
        f"Flush pauses under pressure, median over buffer sizes of each cell's p99 / max "
        f"(ms) by vCPU count: {vcpu_list}. "
        + (
            "They grow with the vCPU count. "
            if vcpus_hold
            else "They do not grow steadily with the vCPU count here. "
        )
        + f"Time to quiesce (p50, median over 1-{max(r['vcpus'] for r in quiesce)} vCPUs) "
        f"against K, the loop iterations between exit checks: {k_list}"
        + (", growing with K. " if k_hold else ", not growing with K. ")
        + f"The extreme case is the stall scenario: a vCPU that blocks 100 ms without an exit "
        f"check held a flush's exclusive section for up to {quiesce_at['inside']:.1f} ms, "
        f"against {quiesce_at['outside']:.1f} ms once the call runs outside guest code."
    )
    return status, text


def shape_rcu_runs(pressure: Json) -> tuple[str, str]:
    """(2) RCU keeps vCPUs running and pays in memory, bounded by the regions it holds."""
    cells = pressure_cells(pressure)
    rcu = [c for c in cells if c["policy"] in ("rcu", "rcu-qsbr")]
    flush = [c for c in cells if c["policy"] == "flush"]
    # Exclusive sections the world ran: under RCU only the guest's atomics
    # (amoadd, once per hart) take one; under flush, atomics and flushes.
    sections_rcu = sum(c["time_to_quiesce_ms"]["count"] for c in rcu)
    sections_flush = sum(c["time_to_quiesce_ms"]["count"] for c in flush)
    flushes = sum(c["flushes"] for c in flush)
    own = sum(c["pause_ms"]["total"] for c in rcu) / max(1, len(rcu))
    theirs = sum(c["pause_ms"]["total"] for c in flush) / max(1, len(flush))
    regions = pressure["config"]["regions"]  # rcu and rcu-qsbr hold one region at most
    bound_ok = all(c["peak_retired_kb"] <= c["buffer_kb"] / regions + 1e-6 for c in rcu)
    worst = max((c["peak_retired_kb"] / c["buffer_kb"] for c in rcu), default=0.0)
    flush_peak = max((c["peak_retired_kb"] / c["buffer_kb"] for c in flush), default=0.0)
    near_zero = own <= 0.25 * theirs
    atomics_only = sections_rcu <= sum(c["vcpus"] for c in rcu)
    status = "reproduced" if near_zero and bound_ok and atomics_only else "partly reproduced"
    text = (
        f"RCU's reclamation stopped no vCPU: its {len(rcu)} cells under pressure ran "
        f"{sections_rcu} exclusive sections in all, the guest's own atomics (at most one "
        f"per hart), against {sections_flush} in the {len(flush)} flush cells, "
        f"{flushes} of them flushes. Retired-but-not-reclaimed code under RCU peaked at "
        f"{100 * worst:.1f}% of the buffer, within its bound of one region of {regions} "
        f"({'held' if bound_ok else 'EXCEEDED'}); a flush retires the whole buffer at once "
        f"(peak {100 * flush_peak:.0f}%), but only while every vCPU is stopped. "
    )
    if near_zero:
        text += (
            f"vCPU time lost per cell: {own:.0f} ms under RCU (translators waiting for space) "
            f"against {theirs:.0f} ms under flush."
        )
    else:
        text += (
            f"The pause is not near zero, though: a translator that finds the buffer full "
            f"waits for a grace period, and per cell vCPUs lost {own:.0f} ms that way under "
            f"RCU against {theirs:.0f} ms stopped or waiting under flush. With the GIL a "
            f"grace period needs every other vCPU thread to be scheduled and pass a block "
            f"boundary, each holding the interpreter for up to a switch interval "
            f"({pressure['machine'].get('switch_interval_ms', 5):g} ms), which is what a "
            f"flush waits for too; and RCU retires one region (an eighth of the buffer) per "
            f"grace period where a flush empties all eight at once, so it waits several "
            f"times as often. Free-threaded CPython, where a grace period costs microseconds "
            f"(see the benchmarks page), is where this shape should appear."
        )
    return status, text


def shape_retranslation(pressure: Json) -> tuple[str, str]:
    """(3) A flush throws hot code away and retranslates more than retiring the oldest."""
    cells = pressure_cells(pressure)
    totals = {
        p: sum(c["retranslations"] for c in cells if c["policy"] == p)
        for p in ("flush", "rcu", "rcu-qsbr")
    }
    ratio = totals["flush"] / max(1, totals["rcu"])
    per_kb = {
        kb: (
            sum(c["retranslations"] for c in cs if c["policy"] == "flush"),
            sum(c["retranslations"] for c in cs if c["policy"] == "rcu"),
        )
        for kb, cs in _by(cells, "buffer_kb").items()
    }
    detail = "; ".join(f"{kb:g} KiB: {f} against {r}" for kb, (f, r) in per_kb.items())
    status = "reproduced" if ratio > 1.05 else "not reproduced"
    text = (
        f"Retranslations under pressure, all cells: flush {totals['flush']}, rcu "
        f"{totals['rcu']}, rcu-qsbr {totals['rcu-qsbr']} (flush {ratio:.2f}x rcu); by buffer, "
        f"flush against rcu: {detail}. "
    )
    if ratio <= 1.05:
        text += (
            "The workload's footprint is the reason: every slice of `parallel` calls all "
            "128 functions once, so little code stays hot between slices, and retiring the "
            "oldest region throws away nearly what a flush does."
        )
    else:
        text += (
            "The gap is not larger because `parallel` is footprint-heavy: each slice calls all "
            "128 functions once, so the oldest region is often code that is needed again "
            "soon (FIFO retirement), and RCU keeps one region free, an eighth less room."
        )
    return status, text


def shape_baseline(pressure: Json) -> tuple[str, str]:
    """(4) With a buffer larger than the working set every policy matches the baseline."""
    code: dict[int, float] = {}
    for b in pressure["baselines"]:
        code[b["vcpus"]] = max(code.get(b["vcpus"], 0.0), b["peak_live_kb"])
    fits = [c for c in pressure["cells"] if c["buffer_kb"] >= code.get(c["vcpus"], 0.0)]
    by_policy = _by(fits, "policy")
    medians = {p: _median([c["baseline_fraction"] for c in cs]) for p, cs in by_policy.items()}
    acted = sum(c["retirements"] + c["flushes"] for c in fits)
    listed = ", ".join(f"{p} {100 * m:.0f}%" for p, m in medians.items())
    ok = bool(medians) and all(0.85 <= m <= 1.15 for m in medians.values()) and acted == 0
    spread = [c["baseline_fraction"] for c in fits]
    text = (
        f"With {', '.join(f'{kb:g}' for kb in sorted({c['buffer_kb'] for c in fits}))} KiB "
        f"(the code is {max(code.values(), default=0):.0f} KiB), no policy retired or flushed "
        f"anything ({acted} events), and the median throughput as a fraction of the "
        f"no-pressure baseline was: {listed}. Single runs ranged from "
        f"{100 * min(spread, default=0):.0f}% to {100 * max(spread, default=0):.0f}%: a run "
        f"of `parallel` lasts about a tenth of a second, where thread start-up and the "
        f"GIL's scheduling show."
    )
    return ("reproduced" if ok else "not reproduced"), text


def _gps(c: Json) -> int:
    gp = c["gp_latency_ms"]
    return 0 if gp is None else int(gp["count"])


def shape_batching(batching: Json) -> tuple[str, str]:
    """(5) Batching retirements per grace period beats one grace period per retirement."""
    cells = pressure_cells(batching)
    rows = []
    stats: dict[str, dict[str, float]] = {}
    for policy, cs in _by(cells, "policy").items():
        retired = sum(c["retirements"] for c in cs)
        stats[policy] = {
            "gp_per_retirement": sum(_gps(c) for c in cs) / max(1, retired),
            "waits_per_retirement": sum(c["translator_waits"] for c in cs) / max(1, retired),
            "fraction": _median([c["baseline_fraction"] for c in cs]),
            "wait_ms": sum(c["pause_ms"]["total"] for c in cs) / len(cs),
            "retranslations": sum(c["retranslations"] for c in cs) / len(cs),
        }
    for policy in ("rcu-sync", "rcu", "rcu-batch"):
        if policy in stats:
            s = stats[policy]
            rows.append(
                f"{policy}: {s['gp_per_retirement']:.2f} grace periods and "
                f"{s['waits_per_retirement']:.2f} translator waits per retirement, "
                f"{s['wait_ms']:.0f} ms waiting per cell, {s['retranslations']:.0f} "
                f"retranslations per cell, {100 * s['fraction']:.0f}% of the baseline"
            )
    if not {"rcu", "rcu-batch", "rcu-sync"} <= stats.keys():
        return "not measured", "The batching run is missing a policy."
    batched = stats["rcu-batch"]
    fewer_gps = batched["gp_per_retirement"] < 0.75 * stats["rcu"]["gp_per_retirement"]
    # A lead under 10 % is within the run-to-run spread of these short runs.
    faster = batched["fraction"] > 1.1 * max(
        stats["rcu"]["fraction"], stats["rcu-sync"]["fraction"]
    )
    status = (
        "reproduced"
        if fewer_gps and faster
        else "partly reproduced"
        if fewer_gps
        else "not reproduced"
    )
    text = "Under pressure (median or mean over the cells): " + "; ".join(rows) + ". "
    if fewer_gps and faster:
        text += "Sharing grace periods cut the waits and kept the most throughput."
    elif fewer_gps:
        text += (
            "Batching works as a mechanism (several retirements share each grace period and "
            "translators wait less often) but does not buy clear throughput here (no lead "
            "beyond 10%, the spread of these short runs): each region in "
            "flight is an eighth of the buffer that holds no live code, so four in flight "
            "cost retranslations, and `rcu-sync`, which keeps all eight regions live until "
            "a translator needs space, wastes none. With regions that small against a "
            "footprint this large, buffer capacity matters more than grace periods."
        )
    else:
        text += "Retirements did not share grace periods in this run."
    return status, text


# ----------------------------------------------------------------------
# The page


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r).replace("±", "+/-") + " |" for r in rows]
    return "\n".join(lines)


def _section(
    title: str, intro: str, finding: str, doc: Json, figures: Sequence[str] = ()
) -> list[str]:
    """A measured run's part of the page: heading, setup, finding, figures, table."""
    head, rows = table_rows(doc)
    return [f"## {title}", "", intro, "", finding, "", *figures, _md_table(head, rows), ""]


def _settings_line(doc: Json) -> str:
    s = doc["config"]
    return (
        f"policies {', '.join(s['policies'])}; vCPUs {', '.join(map(str, s['vcpus']))}; "
        f"buffers {', '.join(f'{kb:g}' for kb in s['buffer_kb'])} KiB in {s['regions']} "
        f"regions; workload {', '.join(s['workloads'])}; {s['repeat']} runs per cell "
        f"(median shown)"
    )


def draw_plots(data: Path) -> None:
    """Draw the pressure run's plots next to its JSON."""
    pressure = json.loads((data / "pressure.json").read_text())
    for name, plot, _ in PLOTS:
        plot(pressure, data / name)


def render(data: Path, images: str) -> str:
    """The page's Markdown, from the JSON stored in ``data``; plots linked under ``images``."""
    docs = {name: json.loads((data / f"{name}.json").read_text()) for name in RUNS}
    quiesce = json.loads((data / "quiesce.json").read_text())
    pressure, batching, stall = docs["pressure"], docs["batching"], docs["stall"]
    m = pressure["machine"]
    shapes: list[tuple[str, Callable[[], tuple[str, str]]]] = [
        (
            "Stop-the-world pauses grow with the vCPU count and the longest run between "
            "exit checks",
            lambda: shape_pause_grows(pressure, quiesce, stall),
        ),
        (
            "RCU keeps vCPUs running and pays in memory, bounded by the regions it holds",
            lambda: shape_rcu_runs(pressure),
        ),
        (
            "A flush throws away hot code and retranslates more than retiring the oldest region",
            lambda: shape_retranslation(pressure),
        ),
        (
            "With a buffer larger than the working set both policies match the baseline",
            lambda: shape_baseline(pressure),
        ),
        (
            "Batching retirements per grace period beats one grace period per retirement",
            lambda: shape_batching(batching),
        ),
    ]
    out = [
        "# Comparison: RCU retirement against a stop-the-world flush",
        "",
        "<!-- Generated by benchmarks/comparison_doc.py from the JSON in docs/comparison/;"
        " do not edit by hand. -->",
        "",
        f"Measured on {m['date'][:10]}: Python {m['python']} ({m['implementation']}), "
        f"{m['cpu_count']} CPUs, {m['platform']}. Regenerate with "
        "`python benchmarks/comparison_doc.py` (about four minutes), or rewrite this page "
        "from the stored results with `--from-json`.",
        "",
        "## Five expected shapes",
        "",
        "What the literature (QEMU's tb_flush, Linux and liburcu's RCU) leads one to expect, "
        "and whether this measurement shows it. Every figure below is computed from the "
        "stored results; so is the verdict.",
        "",
    ]
    for i, (title, judge) in enumerate(shapes, 1):
        status, text = judge()
        out += [f"{i}. **{title}**: *{status}*. {text}", ""]
    figures = []
    for name, _, caption in PLOTS:
        figures += [f"![{caption}]({images}/{name})", "", f"*{caption}*", ""]
    out += _section(
        "Pressure sweep",
        f"`rcu-compare`'s default grid plus 8 vCPUs: {_settings_line(pressure)}.",
        verdict(pressure),
        pressure,
        figures,
    )
    out += _section(
        "Batching retirements per grace period",
        f"{_settings_line(batching)}. `rcu-sync` retires only when a translator needs "
        "space and waits for a grace period of its own each time; `rcu` keeps one region "
        "in flight through `call_rcu`; `rcu-batch` keeps up to four, which share grace "
        "periods.",
        verdict(batching),
        batching,
    )
    out += _section(
        "A stalled vCPU",
        f"`rcu-compare --scenario stall`: {_settings_line(stall)}. One hart sleeps in "
        "`nanosleep` (4 x 100 ms) while the others translate under pressure; each cell runs "
        "with the call inside guest code (the vCPU stays in `running()` and its read-side "
        "section: before) and outside it (after).",
        stall_sentence(stall),
        stall,
    )
    out += [
        "## Time to quiesce",
        "",
        "An exclusive section's wait for busy vCPUs that check for exit requests every K "
        "loop iterations (`benchmarks/quiescent.py`), in microseconds, p50 / p90:",
        "",
    ]
    ks = sorted({r["k"] for r in quiesce})
    qrows = []
    for v in sorted({r["vcpus"] for r in quiesce}):
        mine = {r["k"]: r for r in quiesce if r["vcpus"] == v}
        qrows.append([str(v)] + [f"{mine[k]['p50_us']:.0f} / {mine[k]['p90_us']:.0f}" for k in ks])
    out += [_md_table(["vCPUs", *(f"K={k}" for k in ks)], qrows), ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    """Measure (unless ``--from-json``) and write the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-json", action="store_true", help="do not measure again")
    parser.add_argument(
        "--quick", metavar="DIR", type=Path, help="a tiny run into DIR (a check of the script)"
    )
    args = parser.parse_args(argv)
    data, page, images = DATA, PAGE, DATA.name
    if args.quick is not None:
        data, page, images = args.quick, args.quick / "comparison.md", "."
        measure(data, quick=True)
    elif not args.from_json:
        measure(data, quick=False)
    draw_plots(data)
    page.write_text(render(data, images))
    print(f"wrote {page}")


if __name__ == "__main__":
    main()
