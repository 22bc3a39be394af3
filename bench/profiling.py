"""Sampling a coedit node with py-spy during a measuring window (``--profile``).

py-spy reads the interpreter's memory from outside, so the node runs unmodified; it does take
CPU of its own on a two-core machine, which is why profiled runs are for finding hot spots
and their figures are not the ones reported. Output: py-spy's collapsed stacks
(``<name>.txt``) and a summary of the functions holding the most samples, by self time and
by inclusive time.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["profile_during", "summarize"]


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


async def profile_during(ctx: Any, name: str, pid: int, start: float, end: float) -> Path | None:
    """Record ``pid`` from ``start`` to ``end`` (monotonic); returns the collapsed stacks."""
    binary = _py_spy()
    if binary is None:
        return None
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    out = Path(ctx.log_dir) / f"profile-{name}.txt"
    duration = max(1, round(end - time.monotonic()))
    proc = await asyncio.create_subprocess_exec(
        binary, "record", "--pid", str(pid), "--duration", str(duration), "--rate", "200",
        "--format", "raw", "--nonblocking", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()
    if out.exists():
        (out.with_suffix(".summary.txt")).write_text(summarize(out))
        return out
    return None


def _frame_name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    if " (" not in frame:
        return frame
    function, where = frame.split(" (", 1)
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{function} ({short})"


def summarize(path: Path, top: int = 30) -> str:
    """The functions with the most samples, by self time and inclusive time."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples", "", "self time:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
