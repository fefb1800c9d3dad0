"""Offline checks of docker-compose.yml and deploy/k8s/*.yaml (docs/deploy.md).

The Kubernetes manifests are validated against the Kubernetes JSON schemas that the
``kubernetes-validate`` package bundles (strict: unknown fields are errors), for the
oldest and the newest version it knows. There is no docker CLI here, so the compose file
gets a structural check (known keys only, values of the right shape) and its variables
are interpolated the way compose does. Then the production properties are asserted:
Redis private, password-protected, AOF on, noeviction; Flower and the admin behind
required credentials; a healthcheck or probes on everything; grace periods above the
worker shutdown timeout read from the settings model.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from boundary_celery.core.stats import JobStatsReport, QueueStats
from boundary_celery.settings.models import RedisSettings, WorkerSettings
from boundary_celery.shell.metrics import make_registry, render_metrics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
ADAPTER_RULES = ROOT / "deploy" / "prometheus-adapter" / "rules.yaml"

#: The oldest Kubernetes minor we validate against, and the newest the package bundles.
K8S_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())


def shutdown_timeout_s() -> float:
    """The larger of the settings model's default and config/prod.toml's value."""
    default_ms = WorkerSettings.model_fields["shutdown_timeout_ms"].default
    prod = tomllib.loads((ROOT / "config" / "prod.toml").read_text())
    prod_ms = prod.get("workers", {}).get("shutdown_timeout_ms", default_ms)
    return max(default_ms, prod_ms) / 1000


# -- compose: parsing, structure, interpolation ----------------------------------------

#: The compose-spec keys this file may use: compose refuses an unknown key (a typo such
#: as `stop_grace_periode` or `helthcheck`), and so does this test.
TOP_LEVEL_KEYS = {"services", "volumes", "networks", "secrets", "configs", "name"}
SERVICE_KEYS = {
    "build", "image", "command", "entrypoint", "environment", "env_file", "depends_on",
    "restart", "ports", "expose", "volumes", "healthcheck", "stop_grace_period",
    "stop_signal", "init", "user", "working_dir", "networks", "deploy", "labels",
    "logging", "secrets", "configs", "read_only", "tmpfs", "cap_drop", "security_opt",
    "ulimits", "profiles", "hostname", "shm_size",
}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period",
                    "start_interval", "disable"}
BUILD_KEYS = {"context", "dockerfile", "args", "target"}
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy",
                         "service_completed_successfully"}
RESTART_POLICIES = {"no", "always", "on-failure", "unless-stopped"}
DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:us|ms|s|m|h))+$")
VAR = re.compile(r"\$(?:\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # merge keys (<<) resolved by PyYAML
    assert isinstance(data, dict)
    return {k: v for k, v in data.items() if not k.startswith("x-")}


def duration_s(value: str) -> float:
    """A compose duration (``45s``, ``1m30s``) in seconds."""
    assert DURATION.match(value), f"not a compose duration: {value!r}"
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", value))


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR:?error}`` and ``$$`` in every string of ``value``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        expr = m.group(1) if m.group(1) is not None else m.group(2)
        name, op, arg = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$",
                                 expr, re.S).groups()  # type: ignore[union-attr]
        current = env.get(name)
        if op in (":?", "?") and (current is None or (op == ":?" and current == "")):
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-") and (current is None or (op == ":-" and current == "")):
            return arg
        return current or ""

    return VAR.sub(one, value)


def variables(value: Any) -> list[str]:
    """Every ``${...}`` expression in ``value`` (strings, lists, mappings)."""
    if isinstance(value, dict):
        return [e for v in value.values() for e in variables(v)]
    if isinstance(value, list):
        return [e for v in value for e in variables(v)]
    if isinstance(value, str):
        return [m.group(1) for m in VAR.finditer(value) if m.group(1) is not None]
    return []


SECRETS = {"REDIS_PASSWORD": "0123abcd" * 4, "BOUNDARY_ADMIN_TOKEN": "admintoken42",
           "FLOWER_BASIC_AUTH": "ops:flowerpass"}


def compose_with(env: dict[str, str]) -> dict[str, Any]:
    return interpolate(load_compose(), env)


def argv(command: Any) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def test_compose_is_structurally_valid() -> None:
    data = load_compose()
    assert set(data) <= TOP_LEVEL_KEYS, set(data) - TOP_LEVEL_KEYS
    services = data["services"]
    assert set(services) == {"redis", "worker", "scheduler", "admin", "flower"}
    declared_volumes = set(data.get("volumes") or {})
    for name, svc in services.items():
        assert set(svc) <= SERVICE_KEYS, (name, set(svc) - SERVICE_KEYS)
        assert "image" in svc or "build" in svc, name
        if "build" in svc:
            assert set(svc["build"]) <= BUILD_KEYS, name
            assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
        if "command" in svc:
            assert isinstance(svc["command"], list) and all(
                isinstance(a, str) for a in svc["command"]), name
        env = svc.get("environment", {})
        assert isinstance(env, dict) and all(
            isinstance(v, str) for v in env.values()), (name, env)
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services and spec["condition"] in DEPENDS_ON_CONDITIONS, name
        assert svc.get("restart", "no") in RESTART_POLICIES, name
        for port in svc.get("ports", []):
            assert re.fullmatch(r"(?:[\d.]+:)?\d+:\d+", str(port)), (name, port)
        for volume in svc.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            assert source in declared_volumes or source.startswith((".", "/")), volume
        if "stop_grace_period" in svc:
            duration_s(svc["stop_grace_period"])
        check = svc.get("healthcheck")
        if check is not None:
            assert set(check) <= HEALTHCHECK_KEYS, (name, set(check) - HEALTHCHECK_KEYS)
            assert check["test"][0] in ("CMD", "CMD-SHELL"), name
            for key in ("interval", "timeout", "start_period"):
                if key in check:
                    duration_s(check[key])
    for expr in variables(data):
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(?::?[-?+].*)?", expr, re.S), expr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(MissingVariable, match=missing):
        compose_with(env)
    with pytest.raises(MissingVariable, match=missing):
        compose_with({**env, missing: ""})  # :? also refuses an empty value


def test_compose_redis_is_private_authenticated_durable_and_never_evicts() -> None:
    services = compose_with(SECRETS)["services"]
    redis = services["redis"]
    assert "ports" not in redis, "Redis must not be published on the host"
    args = argv(redis["command"])
    assert args[0] == "redis-server"
    options = dict(zip(args[1::2], args[2::2], strict=True))
    assert options["--requirepass"] == SECRETS["REDIS_PASSWORD"]
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    assert options.get("--appendfsync", "everysec") in ("everysec", "always")
    assert redis["environment"]["REDISCLI_AUTH"] == SECRETS["REDIS_PASSWORD"]
    raw = load_compose()["services"]["redis"]
    assert any(a.startswith("${REDIS_PASSWORD:?") for a in raw["command"])


def test_compose_apps_use_the_password_in_a_valid_redis_url() -> None:
    services = compose_with(SECRETS)["services"]
    want = f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0"
    for name in ("worker", "scheduler", "admin", "flower"):
        url = services[name]["environment"]["REDIS_URL"]
        assert url == want, name
        assert RedisSettings(url=url).effective_url() == want  # the settings accept it


def test_compose_admin_and_flower_require_credentials() -> None:
    raw = load_compose()["services"]
    assert raw["admin"]["environment"]["BOUNDARY_ADMIN__TOKEN"].startswith(
        "${BOUNDARY_ADMIN_TOKEN:?")
    assert raw["flower"]["environment"]["FLOWER_BASIC_AUTH"].startswith(
        "${FLOWER_BASIC_AUTH:?")
    services = compose_with(SECRETS)["services"]
    admin = argv(services["admin"]["command"])
    assert admin[admin.index("--host") + 1] == "0.0.0.0"  # refused by the app without a token
    assert "--insecure" not in admin
    for name in ("admin", "flower"):
        for port in services[name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_compose_every_service_has_a_healthcheck() -> None:
    services = compose_with(SECRETS)["services"]
    for name, svc in services.items():
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert not svc["healthcheck"].get("disable"), name
    worker = argv(services["worker"]["command"])
    name = worker[worker.index("-n") + 1]
    check = services["worker"]["healthcheck"]["test"]
    assert check[1:6] == ["celery", "-A", "examples.app", "boundary", "health"]
    assert check[check.index("--worker") + 1] == name == "worker@%h"
    assert "--max-scheduler-lag-s" in services["scheduler"]["healthcheck"]["test"]
    assert any("/healthz" in part for part in services["admin"]["healthcheck"]["test"])
    assert any("/healthcheck" in part for part in services["flower"]["healthcheck"]["test"])


def test_compose_worker_grace_period_exceeds_the_shutdown_timeout() -> None:
    worker = compose_with(SECRETS)["services"]["worker"]
    assert duration_s(worker["stop_grace_period"]) > shutdown_timeout_s()


# -- Kubernetes ------------------------------------------------------------------------

def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in documents() if d["kind"] == kind}


def containers() -> list[tuple[str, dict[str, Any]]]:
    return [(name, c) for name, d in by_kind("Deployment").items()
            for c in d["spec"]["template"]["spec"]["containers"]]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in manifest_files())
    assert "namespace" not in kustomization  # namespace-agnostic


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_match_the_kubernetes_schema(version: str) -> None:
    seen = []
    for path, doc in documents():
        kubernetes_validate.validate(doc, version, strict=True)
        assert "namespace" not in doc["metadata"], path  # namespace-agnostic
        seen.append(doc["kind"])
    assert {"Deployment", "Service", "Secret", "HorizontalPodAutoscaler"} <= set(seen)


def test_the_validator_really_rejects_a_bad_manifest() -> None:
    _, doc = next((p, d) for p, d in documents() if d["kind"] == "Deployment")
    bad = yaml.safe_load(yaml.safe_dump(doc))
    bad["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 45  # typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)
    bad = yaml.safe_load(yaml.safe_dump(doc))
    bad["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)


def test_k8s_every_container_has_probes_and_resources() -> None:
    assert {name for name, _ in containers()} == {
        "boundary-worker", "boundary-scheduler", "boundary-admin", "boundary-flower"}
    for name, c in containers():
        assert c.get("livenessProbe"), f"{name}: no liveness probe"
        assert c.get("readinessProbe"), f"{name}: no readiness probe"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), (name, kind)


def test_k8s_worker_shutdown_and_health() -> None:
    worker = by_kind("Deployment")["boundary-worker"]
    spec = worker["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > shutdown_timeout_s()
    (c,) = spec["containers"]
    command = c["command"]
    assert command[:4] == ["celery", "-A", "examples.app", "worker"]
    name = command[command.index("-n") + 1]
    assert name == "worker@%h"
    # probes ask for the heartbeat of this very name (%h expands in `boundary health`)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        exec_cmd = " ".join(c[probe]["exec"]["command"])
        assert "boundary health" in exec_cmd and name in exec_cmd, probe
    assert "$(" not in " ".join(c["livenessProbe"]["exec"]["command"])
    pre_stop = " ".join(c["lifecycle"]["preStop"]["exec"]["command"])
    assert "kill -TERM 1" in pre_stop  # Celery's warm shutdown, not a cold one (QUIT)
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_k8s_scheduler_and_admin() -> None:
    deployments = by_kind("Deployment")
    scheduler = deployments["boundary-scheduler"]["spec"]["template"]["spec"]["containers"][0]
    assert scheduler["command"] == ["celery", "-A", "examples.app", "boundary", "scheduler"]
    admin = deployments["boundary-admin"]["spec"]["template"]["spec"]["containers"][0]
    assert admin["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert admin["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e for e in admin["env"]}
    assert "secretKeyRef" in env["BOUNDARY_ADMIN__TOKEN"]["valueFrom"]
    assert admin["command"][admin["command"].index("--host") + 1] == "0.0.0.0"
    service = by_kind("Service")["boundary-admin"]
    assert service["spec"]["type"] == "ClusterIP"


def test_k8s_secrets_come_from_the_example_secret() -> None:
    (secret,) = by_kind("Secret").values()
    keys = set(secret["stringData"])
    assert all("EXAMPLE" in v for v in secret["stringData"].values())
    assert RedisSettings(url=secret["stringData"]["redis-url"]).url
    refs = 0
    for name, c in containers():
        for e in c.get("env", []):
            assert "value" in e or "valueFrom" in e, (name, e)
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs += 1
                assert ref["name"] == secret["metadata"]["name"] and ref["key"] in keys, (name, e)
            else:  # nothing secret in plain values
                assert not re.search(r"TOKEN|PASSWORD|AUTH|REDIS_URL", e["name"]), (name, e)
    assert refs >= 6


def test_hpa_scales_the_workers_on_a_metric_the_admin_exports() -> None:
    (hpa,) = by_kind("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] in by_kind("Deployment")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    name = metric["external"]["metric"]["name"]
    queue = metric["external"]["metric"]["selector"]["matchLabels"]["queue"]

    class Stub:
        def job_stats(self) -> JobStatsReport:
            return JobStatsReport(queues=[QueueStats(queue_name=queue, size=7)])

        def duration_histograms(self) -> list[Any]:
            return []

    text = render_metrics(make_registry(Stub())).decode()  # type: ignore[arg-type]
    assert f'{name}{{queue="{queue}"}} 7.0' in text.splitlines()
    assert f"# TYPE {name} gauge" in text

    rules = yaml.safe_load(ADAPTER_RULES.read_text())
    (rule,) = rules["externalRules"]
    assert rule["name"]["as"] == name and rule["seriesQuery"].startswith(name + "{")
    assert rule["metricsQuery"].startswith("max(")  # every admin replica reports the same
