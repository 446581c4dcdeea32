"""The verdict: a comparison's result in one paragraph of plain words.

A table of forty cells answers every question and none at a glance. The
verdict picks the few that matter (which policy kept the most throughput when
the buffer was too small, which stopped vCPUs the least, which held the most
memory back, which threw the most work away) and says by how much. Every
number in it is computed from the cells; the sentences are templates, so the
verdict changes when the measurements do.

"Under pressure" means a cell whose buffer is smaller than the host code its
workload translated in the no-pressure baseline (the code does not fit), and
where the policy had to act at least once.
"""

from __future__ import annotations

import html
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["failures", "pressure_cells", "verdict", "write_report"]

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
    fits = {(b["workload"], b["vcpus"]): b["peak_live_kb"] for b in doc.get("baselines", [])}
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


def verdict(doc: Json) -> str:
    """A paragraph on who won what, by how much, from the cells of ``doc``."""
    cells: list[Json] = doc["cells"]
    bad = failures(cells)
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
    runs = sum(c.get("repeat", 1) for c in cells)
    if bad:
        parts.append(f"{len(bad)} cell(s) FAILED a correctness check (see above).")
    else:
        parts.append(
            f"All {runs} runs were correct: the guest output matched, no fault, "
            "no use of reclaimed code."
        )
    return " ".join(parts)


def write_report(doc: Json, directory: Path) -> list[Path]:
    """Write ``results.json`` and ``index.html`` into ``directory``; the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    results = directory / "results.json"
    results.write_text(json.dumps(doc, indent=1) + "\n")
    index = directory / "index.html"
    index.write_text(f"<!doctype html><title>rcu-compare</title><p>{html.escape(verdict(doc))}")
    return [results, index]
