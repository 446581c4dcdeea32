"""rcu-compare end to end: tiny comparisons through the command's entry point."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

import pytest

import tcg.cli
from tcg.buffer import RETIRED, TranslationBuffer
from tcg.cli import main
from tcg.policies import RcuRetire, StopTheWorldFlush

# Each run goes to crc32's end (under a second): only its whole run
# translates more code than 16 KiB holds, on every Python version.
TINY = ["--workload", "crc32", "--vcpus", "1,2", "--buffer-kb", "16,64", "--repeat", "1"]
TINY += ["--quiet", "--min-run-seconds", "0"]


class ReclaimAtOnce(RcuRetire):
    """A broken policy: it reclaims a retired region without a grace period."""

    def __init__(self, world: object) -> None:
        super().__init__(flavor="epoch")

    def _retire(self) -> None:
        retired = self.buffer.retire_oldest()
        if retired is not None:
            self.buffer.reclaim(*retired)

    def wait_for_space(self, token: object) -> None:
        self._retire()


class SkipsUnpublish(RcuRetire):
    """A broken policy: it reclaims the oldest region with its TBs still published.

    Deterministic on one vCPU: the reclaim finds links still leading into the
    region (its TBs were never unlinked), and the next time the hart finds
    one of those TBs (through a link, its jump cache or the index), the
    oracle sees a stale generation.
    """

    def __init__(self, world: object) -> None:
        super().__init__(flavor="epoch")

    def on_full(self) -> object:
        return None

    def on_region_start(self, free_regions: int) -> None:
        pass

    def wait_for_space(self, token: object) -> None:
        buffer = self.buffer
        assert isinstance(buffer, TranslationBuffer)  # its internals, on purpose
        with buffer._lock:
            region = buffer._full_order.popleft()
            buffer._state[region] = RETIRED  # but its TBs stay in the index
        buffer.reclaim(region, buffer.generations[region])


class FlushCopy(StopTheWorldFlush):
    """The flush under another name: an A/A comparison must find no difference."""


class NotAPolicy:
    """Makes something that is not a RetirePolicy."""

    def __init__(self, world: object) -> None:
        pass


def run(tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "out.json"
    status = main([*TINY, "--json", str(out), *extra])
    return status, json.loads(out.read_text())


def test_json_has_the_pinned_shape(tmp_path: Path) -> None:
    status, doc = run(tmp_path, "--policies", "rcu,flush")
    assert status == 0
    assert doc["version"] == 1
    assert {"python", "platform", "cpu_count", "date"} <= doc["machine"].keys()
    cells = doc["cells"]
    assert len(cells) == 2 * 2 * 2
    assert {(c["policy"], c["vcpus"], c["buffer_kb"]) for c in cells} == {
        (p, v, kb) for p in ("rcu", "flush") for v in (1, 2) for kb in (16, 64)
    }
    types: dict[str, type | tuple[type, ...]] = {
        "policy": str,
        "vcpus": int,
        "buffer_kb": (int, float),
        "workload": str,
        "mips": float,
        "translations": int,
        "retirements": int,
        "flushes": int,
        "peak_retired_kb": (int, float),
        "baseline_fraction": float,
        "violations": int,
        "output_ok": bool,
    }
    for c in cells:
        for key, kind in types.items():
            assert isinstance(c[key], kind), (key, c[key])
        assert set(c["pause_ms"]) >= {"total", "p50", "p99", "max"}
        assert all(isinstance(c["pause_ms"][k], float) for k in ("total", "p50", "p99", "max"))
        if c["policy"] == "flush":
            assert c["gp_latency_ms"] is None
            assert c["retirements"] == 0
        else:
            assert set(c["gp_latency_ms"]) >= {"p50", "p99"}
            assert c["flushes"] == 0
        assert c["workload"] == "crc32"
        assert c["output_ok"] is True
        assert c["violations"] == 0
        assert c["mips"] > 0
        assert c["baseline_fraction"] > 0
    # 16 KiB is far below crc32's code (about 37 KiB): both policies had to act.
    small = {c["policy"]: c for c in cells if c["buffer_kb"] == 16 and c["vcpus"] == 1}
    assert small["flush"]["flushes"] > 0
    assert small["rcu"]["retirements"] > 0
    # Memory held back: a flush reclaims inside its stop (nothing invalidated
    # here); RCU holds at most the one region waiting for its grace period.
    assert small["flush"]["held_back_kb"] == 0.0
    assert small["flush"]["peak_retired_kb"] > 0.0  # the whole buffer, inside the flush
    assert 0.0 < small["rcu"]["held_back_kb"] <= 16 / 8
    metrics = {(i["metric"], i["a"], i["b"]) for i in doc["comparisons"]}
    assert metrics == {("throughput", "rcu", "flush"), ("time_lost", "rcu", "flush")}


def test_report_writes_html_and_pngs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = tmp_path / "report"
    status = main([*TINY, "--policies", "rcu,flush", "--report", str(report)])
    assert status == 0
    assert json.loads((report / "results.json").read_text())["version"] == 1
    page = (report / "index.html").read_text()
    pngs = sorted(report.glob("*.png"))
    assert {p.name for p in pngs} == {
        "throughput.png",
        "pause_timeline.png",
        "memory.png",
        "pauses.png",
    }
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.name in page


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policies", "nope"], "unknown policy 'nope'"),
        (["--policies", "no.such.module:Policy"], "cannot import policy"),
        (["--policies", f"{__name__}:NotAPolicy"], "did not make a RetirePolicy"),
        (["--workload", "nope"], "unknown workload 'nope'"),
        (["--vcpus", "0"], "must be >= 1"),
        (["--buffer-kb", "-4"], "must be > 0"),
        (["--seconds", "1", "--instructions", "10"], "not allowed with argument"),
        (["--repeat", "x"], "not an integer"),
        (["--vcpus", "1,,2"], "an empty item in the list of vCPU counts"),
        (["--vcpus", "abc"], "not an integer: 'abc'"),
        (["--policies", "os:path"], "policy 'os:path' is a module, not a class or factory"),
        (["--workload", "/bin/ls"], "is not a loadable ELF32 RISC-V file"),
        (["--json", "/nonexistent/dir/out.json"], "--json: no such directory: /nonexistent/dir"),
        (["--min-run-seconds", "-1"], "must be >= 0"),
    ],
)
def test_bad_options_exit_2_with_one_line_before_anything_runs(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def must_not_run(*args: object) -> None:
        raise AssertionError("a run started")

    monkeypatch.setattr(tcg.cli, "run_comparison", must_not_run)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("rcu-compare: error: ")
    assert message in err


def test_an_existing_file_as_report_is_rejected_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tcg.cli, "run_comparison", None)  # calling it would fail
    taken = tmp_path / "report"
    taken.write_text("not a directory")
    with pytest.raises(SystemExit) as exit_info:
        main(["--report", str(taken)])
    assert exit_info.value.code == 2
    assert f"--report: {taken} exists and is not a directory" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("rcu-compare ")


def test_json_to_stdout_is_the_json_alone(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*TINY, "--policies", "flush", "--vcpus", "1", "--buffer-kb", "16"]
    argv.remove("--quiet")  # the table and the verdict must go to stderr
    assert main([*argv, "--json", "-"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["version"] == 1
    assert "All 2 runs were correct" in captured.err
    assert not (Path.cwd() / "-").exists()


def test_a_policy_that_reclaims_published_code_fails_the_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    status = main(
        [
            "--policies", f"{__name__}:SkipsUnpublish", "--workload", "sort", "--vcpus", "1",
            "--buffer-kb", "16", "--instructions", "100000", "--repeat", "1", "--quiet",
            "--json", str(out),
        ]
    )  # fmt: skip
    assert status == 1
    (cell,) = json.loads(out.read_text())["cells"]
    assert cell["violations"] == 1  # the machine stops at the first
    # The buffer's check at the reclaim (links still lead into or out of the
    # region's TBs) or the oracle, whichever comes first.
    message = cell["violation_messages"][0]
    caught = ("still lead into", "still links to", "executed after its region was reclaimed")
    assert any(c in message for c in caught), message
    assert cell["output_ok"] is False
    assert "FAILED" in capsys.readouterr().err


def test_a_policy_without_grace_periods_is_judged_by_what_it_did(tmp_path: Path) -> None:
    # Reclaiming at once is unsafe; the buffer's grace-period check reports
    # it whenever a region is reclaimed (and the oracle if reclaimed code
    # ran). Whatever happened, the exit status must follow it.
    out = tmp_path / "out.json"
    status = main(
        [
            "--policies", f"{__name__}:ReclaimAtOnce", "--workload", "atomics", "--vcpus", "4",
            "--buffer-kb", "16", "--repeat", "1", "--quiet", "--json", str(out),
        ]
    )  # fmt: skip
    (cell,) = json.loads(out.read_text())["cells"]
    failed = cell["violations"] > 0 or cell["output_ok"] is not True or cell["faults"] > 0
    assert status == (1 if failed else 0)
    if cell["violations"]:
        message = cell["violation_messages"][0]
        assert "may still hold one of its TBs" in message or "executed after" in message


def test_jobs_2_gives_the_same_cells_as_jobs_1(tmp_path: Path) -> None:
    _, one = run(tmp_path, "--policies", "rcu,flush")
    _, two = run(tmp_path, "--policies", "rcu,flush", "--jobs", "2")

    def fixed(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
        keys = ("policy", "vcpus", "buffer_kb", "workload", "output_ok", "violations", "faults")
        # crc32 runs the same instructions on every run: the counts match too.
        return [tuple(c[k] for k in (*keys, "instructions")) for c in doc["cells"]]

    assert fixed(one) == fixed(two)


@pytest.mark.timeout(120)
def test_stall_scenario_compares_host_calls_inside_and_outside(tmp_path: Path) -> None:
    out = tmp_path / "stall.json"
    argv = ["--scenario", "stall", "--policies", "flush", "--vcpus", "2", "--repeat", "1"]
    assert main([*argv, "--json", str(out), "--quiet"]) == 0
    doc = json.loads(out.read_text())
    assert doc["scenario"] == "stall"
    cells = {c["host_calls"]: c for c in doc["cells"]}
    assert sorted(cells) == ["inside", "outside"]
    for c in cells.values():
        assert (c["workload"], c["vcpus"], c["output_ok"], c["violations"]) == ("stall", 2, True, 0)
        assert c["flushes"] > 0
    # The guest sleeps 100 ms at a time while the other hart flushes the
    # buffer. Inside running(), a flush's exclusive section must wait for the
    # rest of a sleep; outside it, for nothing but a hart leaving guest code.
    inside = cells["inside"]["time_to_quiesce_ms"]["max"]
    outside = cells["outside"]["time_to_quiesce_ms"]["max"]
    assert inside >= 50.0 > outside, (inside, outside)


def test_a_flush_counts_only_the_part_of_a_sleep_it_overlapped() -> None:
    import quiescent
    from tcg.compare.probe import Probe
    from tcg.policies import StopTheWorldFlush

    probe = Probe(StopTheWorldFlush(quiescent.World(name="probe")))
    # vCPU 0 sleeps 100 ms outside guest code; vCPU 1 waits 2 ms for a flush
    # in the middle of it, and another 1 ms wait starts before the first ends.
    # vCPU 3 spins, leaving guest code many times during the same wait: once.
    probe.gaps = {
        0: [(0.0, 0.100)],
        1: [(0.050, 0.060)],
        2: [(0.200, 0.300)],
        3: [(0.0505, 0.0507), (0.0508, 0.0510), (0.0512, 0.0520)],
    }
    probe.waits = [(0.050, 0.052, 1), (0.051, 0.053, 1)]
    pauses = probe.pauses(stops_world=True)
    assert pauses[0] == [(0.050, 0.053)]  # the flush, not the sleep
    assert pauses[1] == [(0.050, 0.060)]  # its own wait counts whole
    assert pauses[2] == []  # nothing overlapped
    [(start, end)] = pauses[3]
    assert (start, round(end - start, 9)) == (0.0505, 0.0012)  # 0.2 + 0.2 + 0.8 ms
    # A policy that does not stop the world stops nobody else.
    assert probe.pauses(stops_world=False) == {0: [], 1: [(0.050, 0.060)], 2: [], 3: []}


def test_runs_go_in_rounds_and_last_at_least_min_run_seconds(tmp_path: Path) -> None:
    status, doc = run(
        tmp_path, "--policies", "rcu,flush", "--vcpus", "1", "--buffer-kb", "16",
        "--repeat", "3", "--min-run-seconds", "0.05",
    )  # fmt: skip
    assert status == 0
    for record in [*doc["cells"], *doc["baselines"]]:
        assert len(record["runs"]) == 3  # the baselines as many as the cells
        for one in record["runs"]:
            assert one["seconds"] >= 0.05
            assert one["mips"] == pytest.approx(one["instructions"] / one["seconds"] / 1e6)
        low, high = record["mips_ci"]
        assert low <= statistics.geometric_mean(r["mips"] for r in record["runs"]) <= high
    assert doc["config"]["runs"] == 3 * 4


@pytest.mark.timeout(120)
def test_a_policy_against_a_copy_of_itself_ties_on_every_comparison(tmp_path: Path) -> None:
    out = tmp_path / "aa.json"
    status = main(
        [
            "--policies", f"flush,{__name__}:FlushCopy", "--workload", "parallel",
            "--vcpus", "2", "--buffer-kb", "16", "--repeat", "4", "--instructions", "150000",
            "--min-run-seconds", "0", "--quiet", "--json", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    items = json.loads(out.read_text())["comparisons"]
    # throughput and time lost, pooled over the one cell under pressure and in it
    assert {(i["metric"], i["vcpus"]) for i in items} == {
        (m, v) for m in ("throughput", "time_lost") for v in (None, 2)
    }
    for item in items:
        assert item["ci"][0] <= item["ratio"] <= item["ci"][1]
        assert item["better"] == "tie", item
        # half the 5% for the two pooled items, half for the two single-cell ones
        assert item["confidence"] == pytest.approx(1 - 0.025 / 2)


@pytest.mark.parametrize("option", ["--json", "--report"])
def test_an_output_that_cannot_be_written_is_rejected_before_anything_runs(
    option: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Permissions cannot be taken away from root, so the check's view of them is.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    monkeypatch.setattr(tcg.cli, "run_comparison", None)  # calling it would fail
    with pytest.raises(SystemExit) as exit_info:
        main([option, str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert f"{option}: {tmp_path / 'out'} cannot be written" in capsys.readouterr().err


def test_each_round_runs_every_cell_once_with_each_site_together() -> None:
    from tcg.compare import Settings, schedule

    settings = Settings(
        policies=("rcu", "rcu-qsbr", "flush"),
        vcpus=(1, 2),
        buffer_kb=(16.0, 64.0),
        workloads=("crc32",),
        repeat=3,
        seed=5,
    )
    plan = schedule(settings)
    tasks = settings.baselines() + settings.cells()
    assert len(plan) == 3 * len(tasks)
    for round_ in range(3):
        ran = [cell for r, cell in plan if r == round_]
        assert sorted(ran, key=repr) == sorted(tasks, key=repr)
        sites = [(c.vcpus, c.buffer_kb) for c in ran]
        blocks = [site for i, site in enumerate(sites) if i == 0 or sites[i - 1] != site]
        assert len(blocks) == len(set(sites))  # a site's policies run back to back
    assert schedule(settings) == plan  # the seed fixes the order
