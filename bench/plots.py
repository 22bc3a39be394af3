"""Pictures and a Markdown table from one run's JSON: the peer comparison and the growth curves.

``python -m bench plot bench/results/<time>.json --to docs/images/bench`` redraws them from a
stored run; ``python -m bench compare`` runs the scenarios and draws in one go.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from bench.scenarios.peers import PEERS
from bench.suite import PEER_MEASURES, peer_figures

__all__ = ["draw", "peer_table"]

COEDIT = "#2563eb"
PEER_COLOURS = {"sharedb": "#f97316", "hocuspocus": "#10b981", "socketio": "#a855f7",
                "pgbench": "#6b7280"}
DURABLE = {"coedit"} | {p.name for p in PEERS if p.acks_durable}
LABELS = {"coedit": "coedit", "sharedb": "ShareDB", "hocuspocus": "Hocuspocus",
          "socketio": "Socket.IO (Node)"}


def _servers(peers: dict[str, Any]) -> list[str]:
    return ["coedit"] + [name for name in ("sharedb", "hocuspocus", "socketio") if name in peers]


def peer_table(peers: dict[str, Any]) -> str:
    """The head-to-head figures as a Markdown table, one column per server."""
    servers = _servers(peers)
    figures = {name: peer_figures(peers.get(name, {})) for name in servers}
    head = ("| measure | " + " | ".join(LABELS[s] for s in servers)
            + " | coedit against the best peer |")
    lines = [head, "|---" * (len(servers) + 2) + "|"]
    for key, what, unit, more_is_better in PEER_MEASURES:
        cells = []
        for name in servers:
            value = figures[name][key]
            mark = " (in memory, not stored)" if key.startswith("writes") and \
                name not in DURABLE else ""
            cells.append("did not run" if value is None else f"{_fmt(value)} {unit}{mark}")
        # Only acknowledgements that mean the same thing are compared.
        others = [v for n in servers[1:] if (v := figures[n][key]) is not None
                  and (n in DURABLE or not key.startswith("writes"))]
        mine = figures["coedit"][key]
        verdict = ""
        if mine is not None and others:
            best = max(others) if more_is_better else min(others)
            ratio = mine / best if more_is_better else (best / mine if mine else 0.0)
            verdict = f"{ratio:.2f}x ({'ahead' if ratio > 1 else 'behind'})"
        lines.append(f"| {what} | " + " | ".join(cells) + f" | {verdict} |")
    mine = figures["coedit"]["fanout_1n"]
    for name in servers[1:]:
        merged = peers.get(name, {}).get("fanout_1n_merged")
        if not isinstance(merged, dict) or "changes_per_s" not in merged or mine is None:
            continue
        changes = merged["changes_per_s"]
        cells = [f"{_fmt(mine)} changes/s" if n == "coedit" else
                 f"{_fmt(changes)} changes/s (frames of ~{merged['bytes_per_frame']:.0f} B)"
                 if n == name else "" for n in servers]
        lines.append(f"| fan-out, 1 node, {LABELS[name]} merging changes (its default) | "
                     + " | ".join(cells) + f" | {mine / changes:.2f}x against "
                     f"{LABELS[name]} |")
    return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _peer_bars(peers: dict[str, Any], path: Path) -> None:
    servers = _servers(peers)
    figures = {name: peer_figures(peers.get(name, {})) for name in servers}
    fig, axes = plt.subplots(2, 4, figsize=(15, 7))
    for ax, (key, what, unit, more_is_better) in zip(axes.flat, PEER_MEASURES, strict=False):
        values = [figures[s][key] for s in servers]
        heights = [v if v is not None else 0.0 for v in values]
        colours = [COEDIT if s == "coedit" else PEER_COLOURS[s] for s in servers]
        bars = ax.bar([LABELS[s] for s in servers], heights, color=colours)
        for bar, value, name in zip(bars, values, servers, strict=True):
            stored = not key.startswith("writes") or name in DURABLE
            if not stored:  # acknowledged before it is stored: shown, but apart
                bar.set_hatch("//")
                bar.set_alpha(0.45)
            ax.annotate("n/a" if value is None else
                        _fmt(value) + ("" if stored else "\nin memory"),
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, max([*heights, 1.0]) * 1.22)  # room for the labels above the bars
        ax.set_title(f"{what}\n({unit}, {'higher' if more_is_better else 'lower'} is better)",
                     fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.tick_params(axis="y", labelsize=8)
    _merged_panel(axes.flat[-1], peers, figures["coedit"]["fanout_1n"])
    fig.suptitle("coedit against the JavaScript servers, one run on one two-core machine")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _merged_panel(ax: Any, peers: dict[str, Any], mine: float | None) -> None:
    """Fan-out counted in changes, for a peer that merges changes into frames by default."""
    names, values, colours = ["coedit"], [mine or 0.0], [COEDIT]
    for name in ("sharedb", "hocuspocus", "socketio"):
        merged = peers.get(name, {}).get("fanout_1n_merged")
        if isinstance(merged, dict) and "changes_per_s" in merged:
            names.append(f"{LABELS[name]}\n(default merging)")
            values.append(merged["changes_per_s"])
            colours.append(PEER_COLOURS[name])
    if len(names) == 1:
        ax.axis("off")
        return
    bars = ax.bar(names, values, color=colours)
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(_fmt(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, max(values) * 1.15)
    ax.set_title("fan-out, 1 node, counted in changes\n(changes/s, higher is better)",
                 fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.tick_params(axis="y", labelsize=8)


def _plain_ticks(ax: Any, x: list[int]) -> None:
    """Ticks at the measured points, written out: log-scale labels like 3x10^2 collide."""
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:,}" for v in x], fontsize=8)
    ax.minorticks_off()


def _points(growth: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = growth.get(key)
    return value if isinstance(value, list) else []


def _growth(growth: dict[str, Any], peers: dict[str, Any], path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    subs, writers, docs, conns = axes.flat

    points = [p for p in _points(growth, "subscribers") if "error" not in p]
    if points:
        x = [p["subscribers"] for p in points]
        subs.plot(x, [p["frames_per_s"] for p in points], "o-", color=COEDIT,
                  label="deliveries/s")
        subs.set_xscale("log")
        subs.set_xlabel("subscribers of one document")
        subs.set_ylabel("deliveries a second")
        right = subs.twinx()
        right.plot(x, [p.get("p99_ms") or math.nan for p in points], "s--", color="#dc2626",
                   label="p99 write to delivery")
        right.set_ylabel("p99, ms")
        right.set_ylim(bottom=0)
        _plain_ticks(subs, x)
        subs.legend(loc="upper left", fontsize=8)
        right.legend(loc="lower right", fontsize=8)
    subs.set_title("Fan-out as subscribers grow (one node)")

    points = _points(growth, "writers")
    if points:
        x = [p["writers"] for p in points]
        writers.plot(x, [p["commits_per_s"] for p in points], "o-", color=COEDIT,
                     label="coedit, acknowledged writes")
        writers.plot(x, [p["pgbench_commits_per_s"] for p in points], "s--",
                     color=PEER_COLOURS["pgbench"], label="pgbench, one write per transaction")
        writers.set_xscale("log", base=2)
        _plain_ticks(writers, x)
        writers.set_xlabel("closed-loop writers, each on its own document")
        writers.set_ylabel("writes a second")
        writers.legend(fontsize=8)
    writers.set_title("Acknowledged writes as writers grow")

    points = _points(growth, "documents")
    if points:
        x = [p["documents"] for p in points]
        docs.plot(x, [p["commits_per_s"] for p in points], "o-", color=COEDIT)
        docs.set_xscale("log")
        _plain_ticks(docs, x)
        docs.set_xlabel("documents the 16 writers spread over (1 = one hot document)")
        docs.set_ylabel("writes a second")
    docs.set_title("Acknowledged writes as documents grow")

    points = _points(growth, "connections")
    if points:
        conns.plot([p["connections"] for p in points],
                   [(p["rss_kb"] - p["base_rss_kb"]) / 1024 for p in points], "o-",
                   color=COEDIT, label="coedit")
    for name in ("sharedb", "hocuspocus", "socketio"):
        memory = peers.get(name, {}).get("memory")
        if isinstance(memory, list) and memory:
            conns.plot([p["connections"] for p in memory],
                       [(p["rss_kb"] - p["base_rss_kb"]) / 1024 for p in memory], "^",
                       color=PEER_COLOURS[name], label=LABELS[name])
    conns.set_xlabel("subscribed connections")
    conns.set_ylabel("resident memory added, MiB")
    conns.legend(fontsize=8)
    conns.set_title("Memory as connections grow")
    for ax in (subs, writers, docs, conns):
        ax.set_ylim(bottom=0)  # throughput and memory from zero: no exaggerated slopes
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(results_path: Path, to: Path) -> list[Path]:
    """Write the pictures (and the peer table as ``peers.md``) of one run into ``to``."""
    run = json.loads(results_path.read_text())
    scenarios = run.get("scenarios", {})
    to.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    peers = scenarios.get("peers", {})
    if peers.get("coedit"):
        _peer_bars(peers, to / "peers.png")
        (to / "peers.md").write_text(peer_table(peers))
        made += [to / "peers.png", to / "peers.md"]
    growth = scenarios.get("growth", {})
    if growth:
        _growth(growth, peers, to / "growth.png")
        made.append(to / "growth.png")
    return made
