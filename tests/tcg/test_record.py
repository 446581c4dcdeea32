"""The typed records: exact JSON round trips, stored and older documents, the harness's records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tcg.compare import Cell, Settings, run_cell, summarize
from tcg.record import (
    BaselineRecord,
    CellRecord,
    Comparison,
    ComparisonDocument,
    Distribution,
    RunSummary,
    document,
)
from tcg.report import table_rows, verdict_points

STORED = Path(__file__).parents[2] / "docs" / "comparison"


def test_a_measured_record_survives_to_json_and_from_json() -> None:
    cell = Cell("rcu", 1, 16, "crc32")
    doc = run_cell(cell, regions=8, seconds=None, instructions=None, repeat=2)
    record = CellRecord.from_json(doc)
    assert record.policy == "rcu"
    assert record.repeat == 2
    assert record.retirements > 0  # 16 KiB is less than crc32's code: the record has content
    assert record.gp_latency_ms is not None
    assert record.gp_latency_ms.count
    assert record.runs is not None
    assert len(record.runs) == 2
    again = CellRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again == record
    assert record.to_json() == doc
    assert list(record.to_json()) == list(doc)  # the document's key order too


@pytest.mark.parametrize("name", ["pressure", "batching", "stall"])
def test_a_stored_document_loads_cell_by_cell(name: str) -> None:
    doc = json.loads((STORED / f"{name}.json").read_text())
    assert doc["version"] == 1
    records = [CellRecord.from_json(c) for c in doc["cells"]]
    assert records
    assert all(isinstance(r.pause_ms, Distribution) for r in records)
    assert [r.to_json() for r in records] == doc["cells"]


def test_a_cell_that_never_ran_has_an_empty_record_with_its_error() -> None:
    cell = Cell("flush", 2, 32, "crc32")
    doc = summarize(cell, [{"error": "MachineError: no"}])
    record = CellRecord.from_json(doc)
    assert record.error == "MachineError: no"
    assert record.stopped == "error"
    assert record.output_ok is False
    assert record.runs == ()
    assert (record.policy, record.vcpus, record.buffer_kb) == ("flush", 2, 32)
    assert record.to_json() == doc
    assert doc["pause_ms"] == {"total": 0.0, "count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    assert doc["wait_ms"] == {"p50": 0.0, "p99": 0.0, "max": 0.0}


def test_an_older_record_without_runs_round_trips_without_them() -> None:
    doc = json.loads((STORED / "pressure.json").read_text())["cells"][0]
    del doc["runs"]
    record = CellRecord.from_json(doc)
    assert record.runs is None
    assert record.to_json() == doc


def test_a_run_from_before_stepping_aside_was_counted_reads_as_zero() -> None:
    run = {
        "mips": 1.0,
        "instructions": 10,
        "seconds": 1e-5,
        "executions": 1,
        "retranslations": 0,
        "held_back_kb": 0.0,
        "pause_ms": 0.5,
        "pause_max_ms": 0.1,
        "quiesce_max_ms": 0.0,
    }
    assert RunSummary.from_json(run).stepped_aside_ms == 0.0


def test_a_record_missing_a_field_is_a_value_error_that_names_it() -> None:
    doc = json.loads((STORED / "pressure.json").read_text())["cells"][0]
    del doc["flushes"], doc["wait_ms"]
    with pytest.raises(ValueError, match="flushes, wait_ms"):
        CellRecord.from_json(doc)


def test_records_are_frozen() -> None:
    record = CellRecord.failed(dataclasses.asdict(Cell("rcu", 1, 16, "crc32")), None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.mips = 1.0  # type: ignore[misc]


def test_the_plots_draw_a_stored_document_through_its_records(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from tcg.report import PLOTS

    doc = json.loads((STORED / "pressure.json").read_text())
    for name, plot, _ in PLOTS:
        plot(doc, tmp_path / name)
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("name", ["pressure", "batching", "stall"])
def test_a_stored_document_round_trips_as_one_record(name: str) -> None:
    doc = json.loads((STORED / f"{name}.json").read_text())
    record = ComparisonDocument.from_json(doc)
    assert record.to_json() == doc
    assert list(record.to_json()) == list(doc)
    assert all(isinstance(b, BaselineRecord) for b in record.baselines)
    assert record.comparisons is not None
    assert all(isinstance(i, Comparison) for i in record.comparisons)
    assert record.machine.cpu_count == doc["machine"]["cpu_count"]
    assert document(record) is record


def test_a_document_from_before_runs_and_comparisons_loads_and_reports() -> None:
    doc = json.loads((STORED / "pressure.json").read_text())
    del doc["comparisons"]
    for c in doc["cells"]:
        for key in ("runs", "mips_ci", "executions", "held_back_kb", "stepped_aside_ms"):
            del c[key]
    for b in doc["baselines"]:
        del b["runs"], b["mips_ci"]
    record = ComparisonDocument.from_json(doc)
    assert record.comparisons is None
    cell = record.cells[0]
    assert (cell.runs, cell.mips_ci, cell.executions) == (None, None, 1)
    assert (cell.held_back_kb, cell.stepped_aside_ms) == (0.0, 0.0)
    assert record.baselines[0].runs is None
    # The verdict computes the comparisons (throughput only: no per-run costs).
    points = verdict_points(doc)
    assert points[0].startswith("rcu against flush")
    # 48 cells of 5 runs each; a baseline without per-run records counts as one
    assert "All 252 runs were correct" in points[-1]
    head, rows = table_rows(doc)
    assert len(rows) == len(doc["cells"])
    assert rows[0][head.index("95% CI")] == "-"


def test_a_document_missing_its_cells_is_a_value_error() -> None:
    doc = json.loads((STORED / "stall.json").read_text())
    del doc["cells"], doc["machine"]
    with pytest.raises(ValueError, match="machine, cells"):
        ComparisonDocument.from_json(doc)


def test_the_settings_a_document_echoes_read_back() -> None:
    config = json.loads((STORED / "pressure.json").read_text())["config"]
    settings = Settings.from_json(config)
    assert settings.vcpus == (1, 2, 4, 8)
    echoed = {k: v for k, v in config.items() if k not in ("wall_seconds", "runs")}
    assert json.loads(json.dumps(dataclasses.asdict(settings))) == echoed


def test_distributions_pool_to_an_upper_bound() -> None:
    a = Distribution(p50=1.0, p99=5.0, max=6.0, count=10, total=20.0)
    b = Distribution(p50=2.0, p99=3.0, max=9.0, count=5, total=4.0)
    assert Distribution.upper_bound([a, b]) == Distribution(2.0, 5.0, 9.0, 15, 24.0)
    with pytest.raises(ValueError, match="at least one"):
        Distribution.upper_bound([])


def test_a_cell_from_before_chaining_reads_no_links() -> None:
    doc = json.loads((STORED / "pressure.json").read_text())["cells"][0]
    older = {k: v for k, v in doc.items() if not k.startswith("links_")}
    record = CellRecord.from_json(older)
    assert (record.links_made, record.links_followed, record.links_removed_on_retire) == (0, 0, 0)
    # Written back, the fields read as what their absence meant.
    assert record.to_json() == older | dict.fromkeys([k for k in doc if k.startswith("links_")], 0)
