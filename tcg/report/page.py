"""The report on disk: the JSON, the plots and an HTML page that shows them."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from tcg.record import ComparisonDocument, DocumentLike, document
from tcg.report.plots import PLOTS
from tcg.report.tables import comparison_rows, table_rows
from tcg.report.verdict import failures, verdict_points


def write_report(doc: DocumentLike, directory: Path) -> list[Path]:
    """Write ``results.json``, the PNG plots and ``index.html`` into ``directory``."""
    doc = document(doc)
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "results.json"]
    written[0].write_text(json.dumps(doc.to_json(), indent=1) + "\n")
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


def _html(doc: ComparisonDocument) -> str:
    e = html.escape
    figures = "\n".join(
        f'<figure><img src="{e(name)}" alt="{e(name)}"><figcaption>{e(caption)}</figcaption>'
        "</figure>"
        for name, _, caption in PLOTS
    )
    m = doc.machine
    config = {k: v for k, v in doc.config.items() if k != "expect"}
    settings = _html_table(
        ["setting", "value"],
        [[k, ", ".join(map(str, v)) if isinstance(v, list) else str(v)] for k, v in config.items()],
    )
    bad = failures(doc.cells)
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
<p class="meta">Python {e(m.python)} ({e(m.implementation)}),
{e(m.platform)}, {e(str(m.cpu_count))} CPUs, {e(m.date)}.</p>
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
