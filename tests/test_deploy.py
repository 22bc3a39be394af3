"""The deployment files, checked as far as a machine without Docker allows.

``docker-compose.yml`` and ``docker-compose.redis-cluster.yml`` (alone, and merged the way
``docker compose -f docker-compose.yml -f docker-compose.redis-cluster.yml`` merges them) are
validated against the Compose Specification's JSON schema, vendored in
``tests/vectors/compose-spec/`` (see its README), with jsonschema-rs (pinned in
constraints/test.txt). Then checks of our own: every coedit node's environment is one the
server's own configuration accepts and names the services the file defines; the proxy
publishes the port the README gives and reaches every node; the cluster variant names its
cluster by seeds under ``redis+cluster://``. ``deploy/nginx.conf`` goes through ``nginx -t``
when an nginx binary is installed (scripts/test installs Debian's ``nginx`` when it can).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from channels.redis_client import parse_cluster_url
from server.config import Settings

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = Path(__file__).parent / "vectors" / "compose-spec" / "compose-spec.json"
BASE = ROOT / "docker-compose.yml"
CLUSTER = ROOT / "docker-compose.redis-cluster.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
NODE_PORT = 8000  # the Dockerfile's EXPOSE and CMD


def _load(path: Path) -> dict[str, Any]:
    """A Compose file as the YAML it is (anchors and ``<<`` merge keys resolved)."""
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise TypeError(f"{path.name} is not a mapping")
    return document


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge of an override file, for the shapes our files use: mappings merge key
    by key (``environment`` and ``depends_on`` in their mapping form included), anything else
    the override names replaces the base's."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def _interpolated(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``$$`` in one value."""
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        found = env.get(match.group("name"), "")
        return found or (match.group("default") or "")
    return _VARIABLE.sub(one, value)


def _nodes(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The coedit services: those built from this repository's Dockerfile."""
    return {name: service for name, service in model["services"].items()
            if service.get("build") == "."}


def _environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    raw = service.get("environment", {})
    if not isinstance(raw, dict):
        raise TypeError("our files write environment as a mapping")
    return {name: _interpolated(str(value), env) for name, value in raw.items()}


@pytest.fixture(scope="module", name="validator")
def validator_fixture() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema_rs.validator_for(schema)


MODELS = {
    "docker-compose.yml": lambda: _load(BASE),
    "docker-compose.redis-cluster.yml": lambda: _load(CLUSTER),
    "both merged": lambda: _merged(_load(BASE), _load(CLUSTER)),
}


@pytest.mark.parametrize("which", list(MODELS))
def test_the_compose_files_follow_the_compose_specification(validator: Any, which: str) -> None:
    """Each Compose file, and the two merged, validate against the Compose Specification's
    JSON schema."""
    model = MODELS[which]()
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in validator.iter_errors(model)]
    assert errors == []


def test_the_schema_refuses_what_compose_would_refuse(validator: Any) -> None:
    """The vendored schema is strict where it matters: a misspelt service key, ports given as
    one string and a start-up condition Compose does not know are each reported."""
    model = _load(BASE)
    model["services"]["node1"]["enviroment"] = {"COEDIT_NODE_ID": "node1"}
    model["services"]["proxy"]["ports"] = "8080:80"
    model["services"]["node2"]["depends_on"] = {"redis": {"condition": "service_ready"}}
    paths = sorted("/".join(map(str, e.instance_path)) for e in validator.iter_errors(model))
    assert paths == ["services/node1", "services/node2/depends_on",
                     "services/proxy/ports"], paths


@pytest.mark.parametrize("env", [{}, {"COEDIT_SECRET": "s" * 64, "COEDIT_AUTH": "token"}],
                         ids=["dev", "token"])
def test_every_coedit_node_gets_the_settings_it_needs(env: dict[str, str]) -> None:
    """Every node's environment (with the operator's variables unset, or set for tokens) is
    accepted by the server's configuration, names the file's PostgreSQL with its credentials
    and its Redis, gives each node its own id, and the healthcheck asks the node's port."""
    model = _load(BASE)
    nodes = _nodes(model)
    assert sorted(nodes) == ["node1", "node2"]
    pg = model["services"]["postgres"]["environment"]
    expected_db = (f"postgresql+asyncpg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
                   f"@postgres:5432/{pg['POSTGRES_DB']}")
    ids = set()
    for name, service in nodes.items():
        node_env = _environment(service, env)
        settings = Settings.from_env(node_env)
        assert settings.database_url == expected_db, name
        assert settings.redis_url == "redis://redis:6379/0", name
        assert settings.dev_auth is (not env), name
        ids.add(settings.node_id)
        assert node_env["FORWARDED_ALLOW_IPS"] == "*", name  # behind the proxy only
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                         "redis": {"condition": "service_healthy"}}, name
        assert f"http://127.0.0.1:{NODE_PORT}/readyz" in " ".join(service["healthcheck"]["test"])
    assert ids == set(nodes)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {NODE_PORT}" in dockerfile and f'"--port", "{NODE_PORT}"' in dockerfile


def test_the_proxy_publishes_8080_and_balances_over_every_node() -> None:
    """The proxy publishes 8080 (the README's address) to nginx's port 80, mounts
    deploy/nginx.conf, and that file's upstream lists exactly the nodes on their port."""
    model = _load(BASE)
    proxy = model["services"]["proxy"]
    assert proxy["ports"] == ["8080:80"]
    assert proxy["volumes"] == ["./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro"]
    conf = NGINX_CONF.read_text()
    upstream = re.search(r"upstream coedit \{(.*?)\}", conf, re.S)
    assert upstream is not None
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstream.group(1), re.M)
    assert sorted(servers) == sorted((name, str(NODE_PORT)) for name in _nodes(model))
    assert re.search(r"^\s*listen 80;", conf, re.M)
    assert "8080" in (ROOT / "README.md").read_text()


def test_the_cluster_variant_puts_every_node_on_the_cluster() -> None:
    """Merged over the base file, the cluster variant gives every node a ``redis+cluster://``
    URL the server accepts whose seeds are cluster-enabled Redis services of the file, starts
    the nodes after the one-shot join, and the join names all six Redis services."""
    model = _merged(_load(BASE), _load(CLUSTER))
    services = model["services"]
    redis_nodes = {name for name, s in services.items()
                   if "--cluster-enabled yes" in str(s.get("command", ""))}
    assert redis_nodes == {f"rc{i}" for i in range(1, 7)}
    for name in redis_nodes:
        assert services[name]["hostname"] == name  # what the nodes announce and resolve
    for name, service in _nodes(model).items():
        node_env = _environment(service, {})
        url = node_env["COEDIT_REDIS_URL"]
        assert url.startswith("redis+cluster://"), name
        assert Settings.from_env(node_env).redis_url == url
        seeds = parse_cluster_url(url).seeds
        assert {host for host, _ in seeds} <= redis_nodes and {port for _, port in seeds} == {6379}
        assert service["depends_on"]["redis-cluster-init"] == {
            "condition": "service_completed_successfully"}, name
    init = " ".join(services["redis-cluster-init"]["command"].split())
    assert "--cluster-replicas 1" in init
    assert re.search(r"for h in rc1 rc2 rc3 rc4 rc5 rc6;", init)
    assert set(services["redis-cluster-init"]["depends_on"]) == redis_nodes


NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


@pytest.mark.skipif(NGINX is None, reason="needs an nginx binary (Debian package nginx)")
def test_nginx_accepts_the_proxy_configuration(tmp_path: Path) -> None:
    """``nginx -t`` accepts deploy/nginx.conf included in an ``http`` block, as the nginx
    image includes conf.d; the node names are Docker's DNS names, so the test points them at
    the loopback address, which leaves every directive as written."""
    conf = NGINX_CONF.read_text()
    names = re.findall(r"^\s*server\s+([\w.-]+):\d+", conf, re.M)
    assert names, "no upstream servers in deploy/nginx.conf"
    for name in names:
        conf = re.sub(rf"(^\s*server\s+){re.escape(name)}(:\d+)", r"\g<1>127.0.0.1\g<2>", conf,
                      flags=re.M)
    (tmp_path / "default.conf").write_text(conf)
    (tmp_path / "logs").mkdir()
    main = tmp_path / "nginx.conf"
    main.write_text(f"error_log {tmp_path}/logs/error.log;\npid {tmp_path}/nginx.pid;\n"
                    "events {}\n"
                    f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
                    f"  proxy_temp_path {tmp_path}/proxy;\n"
                    f"  include {tmp_path}/default.conf;\n}}\n")
    assert NGINX is not None
    result = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(main)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
