"""Reporting a comparison: the verdict, the table, the plots and the HTML page.

A table of forty cells answers every question and none at a glance. This
package turns a comparison's JSON document into what a reader takes in
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

Modules: :mod:`tcg.report.verdict` (the sentences), :mod:`tcg.report.tables`,
:mod:`tcg.report.plots` and :mod:`tcg.report.page` (the files of
``--report``). Each function takes a document as a
:class:`tcg.record.ComparisonDocument` or as its JSON, and reads it through
the records (its cells are :class:`tcg.record.CellRecord`); a document from
an older run loads as :mod:`tcg.record` describes.
"""

from tcg.compare import pressure_cells
from tcg.report.page import write_report
from tcg.report.plots import (
    PLOTS,
    plot_memory,
    plot_pause_distribution,
    plot_pause_timeline,
    plot_throughput,
    representative,
)
from tcg.report.tables import comparison_rows, stall_table_rows, table_rows
from tcg.report.verdict import failures, precision, stall_sentence, verdict, verdict_points

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
