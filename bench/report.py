"""The results: a JSON file with every raw figure, and a table a person can read."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.measure import Row

__all__ = ["machine_facts", "render_table", "write_results"]


def machine_facts() -> dict[str, Any]:
    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[:3]
    versions: dict[str, str | None] = {}
    for name in ("websockets", "uvicorn", "starlette", "python-socketio", "aiohttp", "uvloop",
                 "sqlalchemy", "asyncpg"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=False,
                               cwd=Path(__file__).resolve().parent).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0],
            "platform": platform.platform(), "loadavg_at_start": load, "versions": versions,
            "commit": commit, "uncommitted_changes": bool(dirty)}


def _number(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def render_table(rows: list[Row]) -> str:
    """A Markdown table: the same text goes to the terminal and into docs/performance.md."""
    header = ["scenario", "measure", "value", "baseline", "ratio", "target", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        baseline = (f"{row.baseline} {_number(row.baseline_value)}"
                    if row.baseline else "")
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        lines.append("| " + " | ".join([
            row.scenario, row.measure, _number(row.value, row.unit), baseline, ratio,
            row.target, row.verdict + (f" ({row.notes})" if row.notes else ""),
        ]) + " |")
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_results(out_dir: Path, started: datetime, facts: dict[str, Any],
                  options: dict[str, Any], scenarios: dict[str, Any],
                  rows: list[Row]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    document = {
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "machine": facts,
        "options": options,
        "rows": [asdict(row) | {"ratio": row.ratio} for row in rows],
        "scenarios": scenarios,
    }
    path.write_text(json.dumps(_clean(document), indent=2))
    return path
