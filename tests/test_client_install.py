"""``pip install ./client`` into a fresh virtualenv, beside an unrelated project, gives an
importable ``coedit_client`` that pulls in none of the server's dependencies and none of its
packages."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parent.parent / "client"

# The server's own dependencies (pyproject.toml); a client environment must have none.
SERVER_ONLY = {"starlette", "uvicorn", "sqlalchemy", "asyncpg", "aiosqlite", "alembic",
               "redis", "hiredis", "pyjwt", "prometheus-client", "jsonpatch", "coedit"}


async def _run(*args: str, cwd: Path, timeout: float = 300) -> str:
    process = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, f"{' '.join(args)} failed:\n{out.decode()[-3000:]}"
    return out.decode()


@pytest.mark.timeout(900)  # a real install from the package index
async def test_the_client_installs_alone(tmp_path: Path) -> None:
    """The fresh environment holds coedit-client, its three dependencies (and theirs), and
    nothing of the server; importing every module loads no server package."""
    source = tmp_path / "src"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("*.egg-info", "build",
                                                                  "__pycache__"))
    project = tmp_path / "unrelated"
    project.mkdir()
    (project / "app.py").write_text(
        "import coedit_client\nprint('app', coedit_client.__version__)\n")
    venv = tmp_path / "venv"
    await _run(sys.executable, "-m", "venv", str(venv), cwd=project)
    python = str(venv / "bin" / "python")
    await _run(python, "-m", "pip", "install", "--quiet", str(source), cwd=project, timeout=600)
    installed = {p["name"].lower() for p in json.loads(
        await _run(python, "-m", "pip", "list", "--format", "json", cwd=project))}
    assert {"coedit-client", "websockets", "httpx", "msgpack"} <= installed
    assert installed & SERVER_ONLY == set()
    loaded = await _run(python, "-c", (
        "import sys, json, coedit_client, coedit_client.cli, coedit_client.http;"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"), cwd=project)
    assert {"server", "channels", "persistence", "web"} & set(json.loads(loaded)) == set()
    assert (await _run(python, "app.py", cwd=project)).strip() == "app 0.1.0"
    help_text = await _run(str(venv / "bin" / "coedit-client"), "--help", cwd=project)
    assert "tail" in help_text and "bulk" in help_text
