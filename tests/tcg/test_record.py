"""The typed cell record: exact JSON round trips, stored documents, the harness's records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tcg.compare import Cell, run_cell, summarize
from tcg.record import CellRecord, Distribution, RunSummary

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
