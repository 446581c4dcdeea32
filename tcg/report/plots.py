"""The report's plots (matplotlib, imported only when a plot is drawn, with Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tcg.record import CellRecord, DocumentLike, document

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


def representative(doc: DocumentLike) -> list[CellRecord]:
    """Per policy, the cell the timelines show: most vCPUs, then the smallest buffer.

    The first workload only; the smallest buffer is where the policies act most.
    """
    cells = document(doc).cells
    workload = cells[0].workload
    out = []
    for policy in dict.fromkeys(c.policy for c in cells):
        mine = [c for c in cells if c.policy == policy and c.workload == workload]
        out.append(max(mine, key=lambda c: (c.vcpus, -c.buffer_kb)))
    return out


def plot_pause_timeline(doc: DocumentLike, path: Path) -> None:
    """When each vCPU was stopped or waiting because of the policy, one panel per policy."""
    plt = _pyplot()
    cells = representative(doc)
    policies = [c.policy for c in cells]
    # Each panel gets room for its rows: 1.1 in. up to 4 vCPUs, more beyond.
    rows = max(c.vcpus for c in cells)
    panel = 1.1 * max(1.0, rows / 4)
    fig, axes = plt.subplots(len(cells), 1, figsize=(10, 1.2 + panel * len(cells)), squeeze=False)
    end = max([c.seconds for c in cells] + [1e-3])
    for ax, c in zip(axes[:, 0], cells, strict=True):
        color = _color(c.policy, policies)
        vcpus = c.vcpus
        shown = sum(len(v) for v in c.stops.values())
        for v in range(vcpus):
            spans = [(s, e - s) for s, e in c.stops.get(str(v), ())]
            ax.broken_barh(spans, (v - 0.35, 0.7), facecolors=color, edgecolors=color, lw=0.6)
        ax.set_yticks(range(vcpus), [f"vCPU {v}" for v in range(vcpus)])
        ax.set_ylim(-0.6, vcpus - 0.4)
        ax.set_xlim(0, end)
        ax.invert_yaxis()
        ax.set_title(
            f"{_label(c.policy)}: {vcpus} vCPUs, {c.buffer_kb:g} KiB buffer, "
            f"{Path(c.workload).name}; {c.pause_ms.count} pauses, "
            f"{c.pause_ms.total:.1f} ms in all"
            + (f" (the first {shown} shown)" if shown < c.pause_ms.count else ""),
            fontsize=9,
            loc="left",
        )
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("time since the machine started (s)")
    fig.suptitle("When each vCPU was stopped or waiting because of the policy (one run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_memory(doc: DocumentLike, path: Path) -> None:
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
        t = [p[0] for p in c.timeline]
        ax.plot(t, [p[1] / 1024 for p in c.timeline], label="live", color="k", lw=0.8)
        ax.plot(
            t,
            [p[2] / 1024 for p in c.timeline],
            label="held back (retired, space\nnot reusable yet)",
            color="tab:orange",
            lw=0.8,
        )
        ax.axhline(c.buffer_kb, ls=":", color="gray", label="buffer size")
        ax.set_ylabel("KiB")
        ax.set_title(
            f"{_label(c.policy)}: {c.vcpus} vCPUs, {c.buffer_kb:g} KiB buffer, "
            f"{Path(c.workload).name}; held back at most {c.held_back_kb:.1f} KiB"
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


def plot_throughput(doc: DocumentLike, path: Path) -> None:
    """Throughput as a fraction of the no-pressure baseline versus buffer size."""
    plt = _pyplot()
    cells = document(doc).cells
    vcpus = sorted({c.vcpus for c in cells})
    policies = list(dict.fromkeys(c.policy for c in cells))
    workloads = list(dict.fromkeys(c.workload for c in cells))
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(
        1, len(vcpus), figsize=(3.6 * len(vcpus) + 1, 4), squeeze=False, sharey=True
    )
    for ax, n in zip(axes[0], vcpus, strict=True):
        for policy in policies:
            for i, w in enumerate(workloads):
                mine = sorted(
                    (c for c in cells if (c.policy, c.vcpus, c.workload) == (policy, n, w)),
                    key=lambda c: c.buffer_kb,
                )
                label = _label(policy) + (f" ({Path(w).name})" if len(workloads) > 1 else "")
                y = [100 * (c.baseline_fraction or 0.0) for c in mine]
                # The cell's 95% interval of MIPS, over the baseline's median.
                low, high = [], []
                for c, v in zip(mine, y, strict=True):
                    ci, base = c.mips_ci, c.baseline_mips or 0.0
                    lo, hi = (v, v)
                    if ci is not None and base:
                        lo, hi = 100 * ci[0] / base, 100 * ci[1] / base
                    low.append(max(0.0, v - lo))
                    high.append(max(0.0, hi - v))
                ax.errorbar(
                    [c.buffer_kb for c in mine],
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
        sizes = sorted({c.buffer_kb for c in cells})
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


def plot_pause_distribution(doc: DocumentLike, path: Path) -> None:
    """Pause p50, p99 and max versus vCPU count, per policy, at the smallest buffer."""
    plt = _pyplot()
    cells = document(doc).cells
    workload = cells[0].workload
    smallest = min(c.buffer_kb for c in cells)
    policies = list(dict.fromkeys(c.policy for c in cells))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharey=True)
    for ax, stat in zip(axes, ("p50", "p99", "max"), strict=True):
        for policy in policies:
            mine = sorted(
                (
                    c
                    for c in cells
                    if c.policy == policy and c.buffer_kb == smallest and c.workload == workload
                ),
                key=lambda c: c.vcpus,
            )
            ax.plot(
                [c.vcpus for c in mine],
                [getattr(c.pause_ms, stat) for c in mine],
                marker=_marker(policy, policies),
                markersize=7,
                fillstyle="none",
                color=_color(policy, policies),
                label=_label(policy),
            )
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_xticks(sorted({c.vcpus for c in cells}))
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
