"""The cluster files under cluster/ are what their tools accept, and set up what erdiff needs.

Ray cluster launcher files (cluster/aws.yaml, cluster/gcp.yaml) are validated against the JSON schema shipped
in the installed Ray (ray/autoscaler/ray-schema.json) and then by the same ``prepare_config`` +
``validate_config`` that ``ray up`` runs before it calls the cloud.

KubeRay manifests (cluster/kuberay/*.yaml) cannot be validated without a Kubernetes API server, so the checks
below encode the fields KubeRay requires, each with its source in ray-project/kuberay (v1.5-v1.6):

- ``apiVersion: ray.io/v1`` and the kind: the CRDs' group/version (ray-operator/config/crd/bases/).
- ``metadata.name``: a DNS-1035 label of at most 53 characters for a RayCluster, 47 for a RayJob
  (controllers/ray/utils/validation.go ValidateRayClusterMetadata / ValidateRayJobMetadata; constant.go
  MaxRayClusterNameLength = 53, MaxRayJobNameLength = 53 - 6).
- RayClusterSpec: ``headGroupSpec`` with ``template`` and ``rayStartParams`` (apis/ray/v1/raycluster_types.go:
  JSON tags without ``omitempty``, i.e. required in the CRD); every ``workerGroupSpecs`` item with ``groupName``,
  ``minReplicas``, ``maxReplicas``, ``rayStartParams`` and ``template`` (same file). ``rayStartParams`` is a
  ``map[string]string``: a YAML number there is rejected by the API server. Every pod template has at least one
  container (validation.go ValidateRayClusterSpec), every container a ``name`` (core/v1 Container) and an image.
  ``minReplicas <= replicas <= maxReplicas``.
- ``authOptions.mode`` is ``disabled`` or ``token`` (API reference, AuthMode); ``token`` needs
  ``rayVersion >= 2.52.0`` (validation.go, IsAuthEnabled).
- RayJobSpec (apis/ray/v1/rayjob_types.go, validation.go ValidateRayJobSpec): ``rayClusterSpec`` or
  ``clusterSelector``; ``runtimeEnvYAML`` parses (here also by Ray's own ``RuntimeEnv``);
  ``ttlSecondsAfterFinished >= 0``; ``activeDeadlineSeconds > 0``; ``submissionMode`` one of K8sJobMode,
  HTTPMode, InteractiveMode, SidecarMode; an ``entrypoint`` (optional only in InteractiveMode).

On top, what the project asks of them: a GPU worker group on spot capacity with min/max, token auth on,
the shared volume on every pod, and a RayJob that runs an existing sweep spec and shuts the cluster down.
"""

import copy
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.runtime_env import RuntimeEnv

from cluster.runtime_env import RUNTIME_ENV_FILE

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER_FILES = ["cluster/aws.yaml", "cluster/gcp.yaml"]
RAYCLUSTER = ROOT / "cluster/kuberay/raycluster.yaml"
RAYJOB = ROOT / "cluster/kuberay/rayjob.yaml"
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}


def load(path) -> dict:
    return yaml.safe_load(Path(ROOT / path).read_text())


@pytest.fixture(scope="module")
def ray_schema() -> dict:
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


# ---------------------------------------------------------------- Ray cluster launcher


@pytest.mark.parametrize("path", LAUNCHER_FILES)
def test_launcher_file_passes_rays_schema_and_ray_up_validation(path, ray_schema):
    config = load(path)
    jsonschema.validate(config, ray_schema)
    validate_config(prepare_config(copy.deepcopy(config)))


def test_schema_check_catches_a_misspelt_node_type_field(ray_schema):
    config = load("cluster/aws.yaml")
    config["available_node_types"]["gpu_spot"]["min_worker"] = config["available_node_types"]["gpu_spot"].pop(
        "min_workers")
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        jsonschema.validate(config, ray_schema)


def is_spot(provider: str, node_config: dict) -> bool:
    if provider == "aws":
        return node_config.get("InstanceMarketOptions", {}).get("MarketType") == "spot"
    scheduling = node_config.get("scheduling", {})
    return scheduling.get("provisioningModel") == "SPOT" or scheduling.get("preemptible") is True


@pytest.mark.parametrize("path", LAUNCHER_FILES)
def test_launcher_has_on_demand_head_and_spot_gpu_workers(path):
    config = load(path)
    provider = config["provider"]["type"]
    types, head = config["available_node_types"], config["head_node_type"]
    assert not is_spot(provider, types[head]["node_config"])
    gpu_types = [t for name, t in types.items() if name != head and t["resources"].get("GPU", 0) >= 1]
    assert gpu_types, "no worker type with a GPU"
    for node_type in gpu_types:
        assert is_spot(provider, node_type["node_config"])
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"] <= config["max_workers"]
    assert re.search(r"-(gpu|cu\d+)$", config["docker"]["image"]), "not a CUDA image"


@pytest.mark.parametrize("path", LAUNCHER_FILES)
def test_launcher_installs_cuda_torch_then_the_project(path):
    commands = load(path)["setup_commands"]
    torch_at = next(i for i, c in enumerate(commands) if "pip install" in c and "torch" in c)
    assert "--index-url https://download.pytorch.org/whl/cu" in commands[torch_at]
    project_at = next(i for i, c in enumerate(commands) if re.search(r"pip install -e .*\[all\]", c))
    assert torch_at < project_at
    assert load(path)["file_mounts"]["/home/ray/erdiff"] == "."


@pytest.mark.parametrize("path", LAUNCHER_FILES)
def test_launcher_turns_token_auth_on_everywhere(path):
    config = load(path)
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token" in c for c in starts)
    assert config["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"


# ---------------------------------------------------------------- KubeRay


def _pod_problems(template, where: str) -> list[str]:
    containers = (template or {}).get("spec", {}).get("containers") or []
    if not containers:
        return [f"{where}.template.spec.containers: at least one container is required"]
    return [f"{where}.template.spec.containers[{i}]: '{key}' is required"
            for i, container in enumerate(containers) for key in ("name", "image") if not container.get(key)]


def _start_params_problems(group: dict, where: str) -> list[str]:
    params = group.get("rayStartParams")
    if not isinstance(params, dict):
        return [f"{where}.rayStartParams: required (a mapping)"]
    return [f"{where}.rayStartParams.{key}: must be a string, got {value!r}"
            for key, value in params.items() if not isinstance(value, str)]


def _version(text: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def raycluster_spec_problems(spec: dict, where: str) -> list[str]:
    problems = []
    head = spec.get("headGroupSpec")
    if not isinstance(head, dict):
        return [f"{where}.headGroupSpec: required"]
    problems += _start_params_problems(head, f"{where}.headGroupSpec")
    problems += _pod_problems(head.get("template"), f"{where}.headGroupSpec")
    names = [group.get("groupName") for group in spec.get("workerGroupSpecs", [])]
    if len(set(names)) != len(names):
        problems.append(f"{where}.workerGroupSpecs: groupName values must be unique")
    for i, group in enumerate(spec.get("workerGroupSpecs", [])):
        at = f"{where}.workerGroupSpecs[{i}]"
        problems += [f"{at}.{key}: required" for key in ("groupName", "minReplicas", "maxReplicas")
                     if key not in group]
        problems += _start_params_problems(group, at)
        problems += _pod_problems(group.get("template"), at)
        low, high = group.get("minReplicas", 0), group.get("maxReplicas", 0)
        if not low <= group.get("replicas", low) <= high:
            problems.append(f"{at}: needs minReplicas <= replicas <= maxReplicas")
    mode = spec.get("authOptions", {}).get("mode", "disabled")
    if mode not in ("disabled", "token"):
        problems.append(f"{where}.authOptions.mode: 'disabled' or 'token', got {mode!r}")
    if mode == "token" and _version(str(spec.get("rayVersion", ""))) < (2, 52, 0):
        problems.append(f"{where}.rayVersion: token auth needs 2.52.0 or later")
    return problems


def manifest_problems(manifest: dict) -> list[str]:
    """What KubeRay would refuse in a RayCluster or RayJob manifest (see the module docstring)."""
    kind = manifest.get("kind")
    if manifest.get("apiVersion") != "ray.io/v1" or kind not in ("RayCluster", "RayJob"):
        return ["apiVersion/kind: expected ray.io/v1 RayCluster or RayJob"]
    problems = []
    name, limit = manifest.get("metadata", {}).get("name", ""), 53 if kind == "RayCluster" else 47
    if not DNS_1035.fullmatch(name) or len(name) > limit:
        problems.append(f"metadata.name {name!r}: a DNS-1035 label of at most {limit} characters")
    spec = manifest.get("spec") or {}
    if kind == "RayCluster":
        return problems + raycluster_spec_problems(spec, "spec")
    if "rayClusterSpec" not in spec and not spec.get("clusterSelector"):
        problems.append("spec: rayClusterSpec or clusterSelector is required")
    if "rayClusterSpec" in spec:
        problems += raycluster_spec_problems(spec["rayClusterSpec"], "spec.rayClusterSpec")
    mode = spec.get("submissionMode", "K8sJobMode")
    if mode not in SUBMISSION_MODES:
        problems.append(f"spec.submissionMode: one of {sorted(SUBMISSION_MODES)}, got {mode!r}")
    if mode != "InteractiveMode" and not spec.get("entrypoint"):
        problems.append("spec.entrypoint: required")
    if spec.get("ttlSecondsAfterFinished", 0) < 0:
        problems.append("spec.ttlSecondsAfterFinished: must be >= 0")
    if spec.get("activeDeadlineSeconds", 1) <= 0:
        problems.append("spec.activeDeadlineSeconds: must be > 0")
    try:
        RuntimeEnv(**(yaml.safe_load(spec.get("runtimeEnvYAML") or "{}") or {}))
    except (yaml.YAMLError, TypeError, ValueError) as err:
        problems.append(f"spec.runtimeEnvYAML: {err}")
    return problems


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB], ids=lambda p: p.name)
def test_kuberay_manifest_has_the_fields_kuberay_requires(path):
    assert manifest_problems(load(path)) == []


def _break(manifest: dict, edit) -> dict:
    broken = copy.deepcopy(manifest)
    edit(broken)
    return broken


def _cluster_spec(manifest: dict) -> dict:
    return manifest["spec"].get("rayClusterSpec", manifest["spec"])


@pytest.mark.parametrize("edit, expected", [
    (lambda m: _cluster_spec(m).pop("headGroupSpec"), "headGroupSpec: required"),
    (lambda m: _cluster_spec(m)["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}), "must be a string"),
    (lambda m: _cluster_spec(m)["workerGroupSpecs"][0].pop("maxReplicas"), "maxReplicas: required"),
    (lambda m: _cluster_spec(m)["workerGroupSpecs"][0].update(minReplicas=9), "minReplicas <= replicas"),
    (lambda m: _cluster_spec(m)["workerGroupSpecs"][0]["template"]["spec"].update(containers=[]), "at least one"),
    (lambda m: _cluster_spec(m).update(rayVersion="2.46.0"), "2.52.0 or later"),
    (lambda m: m["metadata"].update(name="Erdiff_Sweep"), "DNS-1035"),
])
@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB], ids=lambda p: p.name)
def test_kuberay_checks_catch_broken_manifests(path, edit, expected):
    problems = manifest_problems(_break(load(path), edit))
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize("edit, expected", [
    (lambda m: m["spec"].pop("rayClusterSpec"), "rayClusterSpec or clusterSelector"),
    (lambda m: m["spec"].pop("entrypoint"), "entrypoint: required"),
    (lambda m: m["spec"].update(runtimeEnvYAML="pip: {packages: [x], bogus: 1}"), "runtimeEnvYAML"),
    (lambda m: m["spec"].update(submissionMode="Batch"), "submissionMode"),
    (lambda m: m["spec"].update(activeDeadlineSeconds=0), "activeDeadlineSeconds"),
])
def test_rayjob_checks_catch_broken_job_fields(edit, expected):
    problems = manifest_problems(_break(load(RAYJOB), edit))
    assert any(expected in problem for problem in problems), problems


def _gpu_limit(group: dict) -> int:
    return max(int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))
               for c in group["template"]["spec"]["containers"])


def _pods(spec: dict) -> list[dict]:
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB], ids=lambda p: p.name)
def test_kuberay_cluster_has_spot_gpu_workers_token_auth_and_shared_volume(path):
    spec = _cluster_spec(load(path))
    assert spec["authOptions"]["mode"] == "token"
    gpu_groups = [g for g in spec["workerGroupSpecs"] if _gpu_limit(g) >= 1]
    assert gpu_groups and all(g["maxReplicas"] >= 1 for g in gpu_groups)
    assert all(any("spot" in key for key in g["template"]["spec"].get("nodeSelector", {})) for g in gpu_groups)
    for pod in _pods(spec):
        mounts = {m["mountPath"] for c in pod["spec"]["containers"] for m in c.get("volumeMounts", [])}
        assert "/mnt/shared" in mounts


def test_rayjob_runs_an_existing_sweep_spec_onto_the_shared_volume_and_shuts_down():
    spec = load(RAYJOB)["spec"]
    command = shlex.split(spec["entrypoint"])
    assert command[:3] == ["python", "-m", "tune.sweep"]
    assert (ROOT / command[3]).is_file(), f"{command[3]} does not exist"
    assert command[command.index("--out") + 1].startswith("/mnt/shared/")
    assert spec["shutdownAfterJobFinishes"] is True
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert {"D4RL_DATASET_DIR", "ERDIFF_DATA_DIR"} <= set(runtime_env["env_vars"])


# ---------------------------------------------------------------- runtime_env.yaml


def test_runtime_env_file_is_a_valid_ray_runtime_env_that_keeps_data_out_of_the_upload():
    data = yaml.safe_load(RUNTIME_ENV_FILE.read_text())
    RuntimeEnv(**data)
    required = {"results/", "runs/", "data/", ".venv/", ".git/", "*.pt", "*.hdf5"}
    assert required <= set(data["excludes"])
