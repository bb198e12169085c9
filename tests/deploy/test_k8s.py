"""The Kubernetes manifests agree with the project's config, rules and ports."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from aupwatch.streams.config import load_config
from tests.deploy import servers

K8S = servers.DEPLOY / "k8s"
TOML = servers.DEPLOY / "aupwatch.toml"


def read(name: str) -> str:
    return (K8S / name).read_text()


def block_after(text: str, marker: str, indent: int) -> str:
    """The lines after ``marker``, with ``indent`` leading spaces removed (blank lines kept)."""
    body = text.split(marker, 1)[1].splitlines()[1:]
    out = []
    for line in body:
        assert not line.strip() or line.startswith(" " * indent), line
        out.append(line[indent:])
    return "\n".join(out) + "\n"


def env_values(deployment: str) -> dict[str, str]:
    """Plain ``name``/``value`` environment entries of the worker container."""
    return dict(re.findall(r"- name: (AUPWATCH_\w+)\n\s+value: \"?([^\"\n]*)\"?", deployment))


def test_generated_files_are_up_to_date() -> None:
    proc = subprocess.run(
        ["bash", str(K8S / "render.sh"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_prometheusrule_holds_the_rule_file() -> None:
    rules = servers.RULES_FILE.read_text()
    spec = block_after(read("prometheusrule.yaml"), "\nspec:", 2)
    assert "\nspec:\n" in read("prometheusrule.yaml")
    assert spec == rules[rules.index("groups:") :]
    assert "kind: PrometheusRule" in read("prometheusrule.yaml")


def test_configmap_holds_the_default_config() -> None:
    configmap = read("configmap.yaml")
    toml_text = block_after(configmap, "  aupwatch.toml: |", 4)
    assert toml_text == TOML.read_text()
    tomllib.loads(toml_text)


def test_deployment_env_overrides_are_valid_config(tmp_path: Path) -> None:
    deployment = read("deployment.yaml")
    env = env_values(deployment)
    config_path = env.pop("AUPWATCH_CONFIG")
    mount = re.search(r"- name: config\n\s+mountPath: (\S+)", deployment)
    assert mount and config_path == f"{mount.group(1)}/aupwatch.toml"
    local = tmp_path / "aupwatch.toml"
    local.write_text(block_after(read("configmap.yaml"), "  aupwatch.toml: |", 4))
    secrets = {"AUPWATCH_KAFKA__SASL_USERNAME": "u", "AUPWATCH_KAFKA__SASL_PASSWORD": "p"}
    config = load_config(local, {**env, **secrets})
    assert config.monitor.metrics_port == 9464
    assert config.monitor.alertmanager_url
    assert config.kafka.sasl_username == "u" and config.kafka.sasl_password == "p"


def test_kafka_credentials_come_from_the_secret() -> None:
    deployment = read("deployment.yaml")
    for var, key in (
        ("AUPWATCH_KAFKA__SASL_USERNAME", "username"),
        ("AUPWATCH_KAFKA__SASL_PASSWORD", "password"),
    ):
        pattern = (
            rf"- name: {var}\n\s+valueFrom:\n\s+secretKeyRef:\n"
            rf"\s+name: aupwatch-kafka\n\s+key: {key}\n"
        )
        assert re.search(pattern, deployment), var
    assert re.search(r"name: aupwatch-kafka\n", read("secret.example.yaml"))
    assert "sasl_password" not in read("configmap.yaml").split("aupwatch.toml: |")[0]


def test_ports_probes_and_scaling_agree() -> None:
    deployment, service = read("deployment.yaml"), read("service.yaml")
    port = env_values(deployment)["AUPWATCH_MONITOR__METRICS_PORT"]
    assert re.search(rf"- name: metrics\n\s+containerPort: {port}\n", deployment)
    assert re.search(rf"- name: metrics\n\s+port: {port}\n\s+targetPort: metrics", service)
    assert re.search(r"- port: metrics\n", read("servicemonitor.yaml"))
    for probe in ("livenessProbe", "readinessProbe"):
        assert re.search(rf"{probe}:\n\s+httpGet:\n\s+path: /metrics\n\s+port: metrics", deployment)
    grace = re.search(r"terminationGracePeriodSeconds: (\d+)", deployment)
    assert grace and int(grace.group(1)) >= 30
    replicas = re.search(r"\n  replicas: (\d+)", deployment)
    partitions = tomllib.loads(TOML.read_text())["kafka"]["partitions"]
    assert replicas and 1 <= int(replicas.group(1)) <= partitions
    assert f":{port}" in servers.PROMETHEUS_CONFIG.read_text()


def test_kustomization_lists_existing_manifests() -> None:
    resources = re.findall(r"^  - (\S+)$", read("kustomization.yaml"), re.M)
    assert "deployment.yaml" in resources and "prometheusrule.yaml" in resources
    assert "secret.example.yaml" not in resources
    for name in resources:
        assert (K8S / name).is_file(), name
    assert (K8S / "README.md").is_file()
