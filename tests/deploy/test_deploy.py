"""The container image and the Kubernetes manifests, checked offline (no Docker daemon here):
hadolint on the Dockerfile, kubernetes-validate on every manifest against a pinned Kubernetes,
and every keel command line in them parsed by keel's own CLI."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from keel.cli import app as cli_app
from keel.config import load_config

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
K8S_VERSION = "1.34.0"   # pinned: the oldest Kubernetes the manifests promise to fit
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is not installed: it comes with keel's dev extras "
                    "(./scripts/test installs them)")
    return path


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _parses(args: list[str]) -> None:
    """Parse ``keel ARGS`` with keel's own CLI (options and types checked, nothing run).

    Raises the CLI's usage error for an unknown command or option or a bad value.
    """
    cmd: Any = typer.main.get_command(cli_app)
    ctx = cmd.context_class(cmd, info_name="keel")
    rest = list(args)
    while hasattr(cmd, "get_command"):                # a group: descend to the subcommand
        assert rest, f"no subcommand in {args}"
        name, rest = rest[0], rest[1:]
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"keel has no command {name!r} ({args})"
        cmd, ctx = sub, sub.context_class(sub, info_name=name, parent=ctx)
    cmd.make_context(ctx.info_name, rest, parent=ctx.parent)


def test_dockerfile_passes_hadolint() -> None:
    out = subprocess.run([_tool("hadolint"), "--failure-threshold", "info",
                          str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install keel\n", encoding="utf-8")
    out = subprocess.run([_tool("hadolint"), str(bad)], capture_output=True, text=True)
    assert out.returncode != 0 and "DL3007" in out.stdout     # the test can fail


def test_image_is_multistage_nonroot_with_a_healthcheck() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert len(re.findall(r"^FROM python:3\.11-slim", text, re.M)) == 2
    assert re.search(r"^USER 10001", text, re.M)
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    assert re.search(r'^ENTRYPOINT \["keel"\]', text, re.M)


def test_dockerfile_installs_exactly_as_the_readme_says() -> None:
    docker = (REPO / "Dockerfile").read_text(encoding="utf-8")
    installs = re.findall(r"^RUN (python3 -m pip install .*)$", docker, re.M)
    assert len(installs) == 1
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert installs[0] in readme, f"README lacks the image's install step: {installs[0]}"
    lock = (REPO / "requirements.lock").read_text(encoding="utf-8")
    pins = dict(line.split("==") for line in lock.splitlines() if "==" in line)
    for need in ("numpy", "cvxpy", "sqlalchemy", "fastapi", "psycopg-binary"):
        assert need in pins, f"requirements.lock misses {need}: rerun scripts/lock-deps"


def test_manifests_validate_against_pinned_kubernetes() -> None:
    out = subprocess.run([_tool("kubernetes-validate"), "-k", K8S_VERSION, "--strict",
                          *map(str, MANIFESTS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("passed") == sum(len(_docs(p)) for p in MANIFESTS)


def test_validator_catches_a_bad_manifest(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((K8S / "serve.yaml").read_text(encoding="utf-8")
                   .replace("replicas: 3", "replicas: three"), encoding="utf-8")
    out = subprocess.run([_tool("kubernetes-validate"), "-k", K8S_VERSION, "--strict",
                          str(bad)], capture_output=True, text=True)
    assert out.returncode != 0 and "replicas" in out.stdout + out.stderr


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kust["resources"]) == sorted(p.name for p in MANIFESTS)


def _containers() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in MANIFESTS:
        for doc in _docs(path):
            spec = doc.get("spec", {}).get("template", {}).get("spec", {})
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                out.append((doc["metadata"]["name"], c))
    return out


def test_every_keel_command_line_in_the_manifests_parses() -> None:
    seen = _containers()
    assert {n for n, _ in seen} == {"keel-serve", "keel-run"}
    for _, c in seen:
        _parses(c["args"])


def test_live_loop_is_single_replica_recreate_and_serve_has_probes_and_limits() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for p in MANIFESTS for d in _docs(p)}
    run = docs["Deployment", "keel-run"]["spec"]
    assert run["replicas"] == 1 and run["strategy"]["type"] == "Recreate"
    serve = docs["Deployment", "keel-serve"]["spec"]
    assert serve["replicas"] == 3
    for _, c in _containers():
        if c["name"] != "keel":
            continue
        res = c["resources"]
        assert res["requests"]["memory"] == "2Gi" and res["limits"]["memory"] == "4Gi"
        assert res["requests"]["cpu"] == "1" and res["limits"]["cpu"] == "2"
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"
        secrets = {e["name"] for e in c["env"] if "valueFrom" in e}
        assert secrets == {"KEEL_SERVICE__API_TOKEN", "KEEL_STORE__URL"}


def test_configmap_holds_the_example_config_and_keel_accepts_it(tmp_path: Path) -> None:
    cm = next(d for d in _docs(K8S / "configmap.yaml") if d["kind"] == "ConfigMap")
    toml = cm["data"]["keel.toml"]
    assert toml == (REPO / "examples" / "keel.toml").read_text(encoding="utf-8"), (
        "deploy/k8s/configmap.yaml is stale: run scripts/k8s-configmap")
    path = tmp_path / "keel.toml"
    path.write_text(toml, encoding="utf-8")
    load_config(path)


def test_compose_services_share_one_image_and_their_commands_parse() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"postgres", "exchange", "migrate", "run", "serve"}
    keel = {n: s for n, s in services.items() if n != "postgres"}
    assert {s["image"] for s in keel.values()} == {"keel:local"}
    for svc in keel.values():
        _parses(svc["command"])
        health = svc.get("healthcheck", {}).get("test")
        if health:
            assert health[0] == "CMD" and shlex.join(health[1:])
    assert services["run"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully")
