"""What a reviewer checks in the rendered manifests, each as a function from the objects to the
problems it finds (an empty list: none). test_kubernetes.py runs them on every overlay, and on
manifests broken on purpose to show that each one finds what it is for."""

from __future__ import annotations

import dataclasses
import re
import shlex
import tomllib
from typing import Any

import kubernetes_validate

from api.cli import _parser
from api.queue import EVAL_QUEUE, TRAINING_QUEUE, WEBHOOK_QUEUE, training_queue
from tests.deploy.manifests import (
    ROOT,
    Manifest,
    image_tag,
    is_tunery_image,
    objects_of,
    workloads,
)
from worker.supervisor import Watch

# The oldest Kubernetes the manifests are written for, and the newest whose schemas are bundled.
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
# Seconds the worker needs after the trainer stopped: upload the checkpoint, hand the job back.
HAND_BACK_SECONDS = 120
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
GPU = "nvidia.com/gpu"


def tunery_args(command: list[str]) -> Any:
    """The namespace `tunery` parses the command into; None for any other program."""
    if command[:1] != ["tunery"]:
        return None
    try:
        return _parser().parse_args(command[1:])
    except SystemExit:
        raise AssertionError(f"`{shlex.join(command)}` is not a command `tunery` accepts") from None


def runs(container: dict[str, Any], command: str) -> Any:
    """The parsed arguments when the container runs `tunery <command>` (cmd_<command>), else None."""
    args = tunery_args(list(container.get("command", [])) + list(container.get("args", [])))
    return args if args is not None and args.run.__name__ == f"cmd_{command}" else None


def schema_problems(objects: list[Manifest]) -> list[str]:
    problems = []
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                problems.append(
                    f"{obj['kind']}/{obj['metadata']['name']} on {version}: {path}: {error.message}"
                )
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(error.message)
    return problems


def probe_problems(objects: list[Manifest]) -> list[str]:
    """Long-running containers have a liveness probe; those with ports, a readiness probe on one of
    their ports; the API's readiness asks /readyz and its liveness /healthz."""
    problems = []
    for workload in workloads(objects):
        if workload.kind in ("Job", "CronJob"):
            continue
        for container in workload.spec["containers"]:
            where = f"{workload.name}/{container['name']}"
            if "livenessProbe" not in container:
                problems.append(f"{where} has no livenessProbe")
            ports = {port.get("name") for port in container.get("ports", [])} | {
                port["containerPort"] for port in container.get("ports", [])
            }
            if ports and "readinessProbe" not in container:
                problems.append(f"{where} listens but has no readinessProbe")
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                http = container.get(kind, {}).get("httpGet")
                if http and http["port"] not in ports:
                    problems.append(f"{where}: {kind} asks port {http['port']}, which it does not open")
            if runs(container, "api"):
                if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                    problems.append(f"{where}: the API's readinessProbe must ask /readyz (the database)")
                if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                    problems.append(f"{where}: the API's livenessProbe must ask /healthz (not the database)")
    return problems


def resource_problems(objects: list[Manifest]) -> list[str]:
    """Every container, init containers too, requests CPU and memory and has a memory limit."""
    problems = []
    for workload in workloads(objects):
        for container in workload.containers:
            resources = container.get("resources", {})
            missing = [
                f"{section}.{name}"
                for section, names in (("requests", ("cpu", "memory")), ("limits", ("memory",)))
                for name in names
                if name not in resources.get(section, {})
            ]
            if missing:
                problems.append(f"{workload.name}/{container['name']} sets no {', '.join(missing)}")
    return problems


def image_problems(objects: list[Manifest]) -> list[str]:
    """Images are pinned by a tag other than latest; Tunery's own at the project's version."""
    problems = []
    for workload in workloads(objects):
        for container in workload.containers:
            image, where = container["image"], f"{workload.name}/{container['name']}"
            tag = image_tag(image)
            if tag in (None, "latest"):
                problems.append(f"{where}: image {image} is not pinned by a tag")
            elif is_tunery_image(image) and tag != PROJECT_VERSION:
                problems.append(f"{where}: image {image} is not the release {PROJECT_VERSION}")
    return problems


def security_problems(objects: list[Manifest]) -> list[str]:
    """No container runs as root, writes its root filesystem, escalates privileges or keeps
    capabilities (the Pod Security "restricted" profile, and read-only roots)."""
    problems = []
    for workload in workloads(objects):
        pod = workload.spec.get("securityContext", {})
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{workload.name}: no RuntimeDefault seccompProfile")
        if workload.spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{workload.name}: mounts a service account token it does not need")
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if workload.spec.get(key):
                problems.append(f"{workload.name}: {key}")
        for container in workload.containers:
            where = f"{workload.name}/{container['name']}"
            own = container.get("securityContext", {})
            context = {**pod, **own}
            if context.get("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if context.get("runAsUser") in (None, 0):
                problems.append(
                    f"{where}: runs as uid {context.get('runAsUser', 'of the image')}, not a set non-root uid"
                )
            if own.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: its root filesystem is writable")
            if own.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if own.get("privileged"):
                problems.append(f"{where}: is privileged")
            if own.get("capabilities", {}).get("drop") != ["ALL"] or own.get("capabilities", {}).get("add"):
                problems.append(f"{where}: does not drop every capability")
            mounted = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            if is_tunery_image(container["image"]) and "/tmp" not in mounted:
                problems.append(f"{where}: no writable /tmp on its read-only root")
    return problems


def migration_problems(objects: list[Manifest]) -> list[str]:
    """One Job runs `tunery migrate`; every other pod that uses the database starts behind an init
    container that waits for it (`tunery migrate --wait`), of the same release."""
    problems = []
    jobs = [
        (workload, container)
        for workload in workloads(objects)
        for container in workload.containers
        if (args := runs(container, "migrate")) is not None and args.wait is None
    ]
    if len(jobs) != 1 or jobs[0][0].kind != "Job":
        return [f"exactly one Job must run `tunery migrate`, found {[w.name for w, _ in jobs]}"]
    job, migrating = jobs[0]
    if job.spec.get("initContainers"):
        problems.append(f"{job.name}: the migration itself must not wait")
    users = [
        workload
        for workload in workloads(objects)
        if workload.name != job.name
        and any(_reads_secret(container, "tunery-database") for container in workload.containers)
    ]
    if not any(runs(container, "api") for workload in users for container in workload.containers):
        problems.append("no pod running `tunery api` reads the database secret")
    for workload in users:
        first = (workload.spec.get("initContainers") or [{}])[0]
        args = runs(first, "migrate") if first else None
        if args is None or not args.wait or args.wait <= 0:
            problems.append(f"{workload.name}: uses the database but starts no `tunery migrate --wait` first")
        elif image_tag(first["image"]) != image_tag(migrating["image"]):
            problems.append(
                f"{workload.name}: waits for release {image_tag(first['image'])}, the Job migrates "
                f"to {image_tag(migrating['image'])}"
            )
        elif not _reads_secret(first, "tunery-database"):
            problems.append(f"{workload.name}: its migration wait cannot read the database URL")
    return problems


def _reads_secret(container: dict[str, Any], prefix: str) -> bool:
    names = [source.get("secretRef", {}).get("name", "") for source in container.get("envFrom", [])]
    names += [
        variable.get("valueFrom", {}).get("secretKeyRef", {}).get("name", "")
        for variable in container.get("env", [])
    ]
    # A generated Secret's name carries a hash suffix: tunery-database-6g8d88gcc6.
    return any(name == prefix or re.fullmatch(re.escape(prefix) + r"-[a-z0-9]{10}", name) for name in names)


def worker_problems(objects: list[Manifest]) -> list[str]:
    """Each GPU pool's workers: GPUs asked of the scheduler and offered to the scheduler of jobs
    agree, the pool trains from its own queue only, tolerates the GPU taint, and has time to
    checkpoint on SIGTERM before the kubelet's SIGKILL."""
    problems = []
    stop_grace = next(field.default for field in dataclasses.fields(Watch) if field.name == "stop_grace")
    grace_needed = float(stop_grace) + HAND_BACK_SECONDS  # type: ignore[arg-type]
    consumed: set[str] = set()
    pools: dict[str, str] = {}
    for workload in workloads(objects):
        for container in workload.spec["containers"]:
            args = runs(container, "worker")
            if args is None:
                continue
            where = f"{workload.name}/{container['name']}"
            queues = set((args.queues or "").split(",")) - {""}
            if not queues:
                problems.append(f"{where}: names no --queues (the default takes webhook deliveries too)")
            consumed |= queues
            if args.pool in pools:
                problems.append(f"{where}: pool {args.pool} is also {pools[args.pool]}'s")
            pools[args.pool] = workload.name
            if WEBHOOK_QUEUE in queues:
                if queues != {WEBHOOK_QUEUE} or args.gpus != 0:
                    problems.append(f"{where}: webhook deliveries need a worker of their own, without GPUs")
                continue
            if EVAL_QUEUE in queues:
                # Eval runs generate through the inference server: no GPU, no training queue.
                if queues != {EVAL_QUEUE} or args.gpus != 0:
                    problems.append(f"{where}: eval runs need a worker of their own, without GPUs")
                continue
            gpus = container.get("resources", {}).get("limits", {}).get(GPU)
            if args.gpus is None or str(args.gpus) != str(gpus):
                problems.append(f"{where}: offers --gpus {args.gpus} but the pod gets {GPU}={gpus}")
            trainings = {queue for queue in queues if queue.startswith(TRAINING_QUEUE)}
            if trainings != {training_queue(args.pool)}:
                problems.append(
                    f"{where}: pool {args.pool} must train from {training_queue(args.pool)} alone, "
                    f"not {sorted(trainings)}"
                )
            if not any(t.get("key") == GPU for t in workload.spec.get("tolerations", [])):
                problems.append(f"{where}: does not tolerate the {GPU} taint of GPU nodes")
            grace = workload.spec.get("terminationGracePeriodSeconds", 30)
            if grace < grace_needed:
                problems.append(
                    f"{where}: terminationGracePeriodSeconds {grace} < {grace_needed:.0f}, the trainer's "
                    "checkpoint on SIGTERM and the hand-back"
                )
    for queue in ("tunery.validation", "tunery.export", WEBHOOK_QUEUE, EVAL_QUEUE):
        if queue not in consumed:
            problems.append(f"no worker consumes {queue}")
    return problems


# Settings of the storage backend (issue 13's other half); Settings has them once that is merged.
STORAGE_SETTINGS = {"TUNERY_STORAGE_URL", "TUNERY_S3_ENDPOINT_URL"}


def known_variables() -> set[str]:
    from api.config import Settings

    return {"TUNERY_" + name.upper() for name in Settings.model_fields} | STORAGE_SETTINGS


def config_problems(objects: list[Manifest]) -> list[str]:
    """Every TUNERY_ variable is a setting; each Secret is read only where it is needed; the API
    reaches the inference Service at its port; only the import Job may write the base models."""
    problems = []
    known = known_variables()
    config = {}
    for obj in objects_of(objects, "ConfigMap") + objects_of(objects, "Secret"):
        keys = set(obj.get("data", {})) | set(obj.get("stringData", {}))
        config.update(obj.get("data", {}))
        problems += [
            f"{obj['metadata']['name']}: {key} is no setting"
            for key in keys - known
            if key.startswith("TUNERY_")
        ]
    for workload in workloads(objects):
        for container in workload.containers:
            where = f"{workload.name}/{container['name']}"
            for variable in container.get("env", []):
                if variable["name"].startswith("TUNERY_") and variable["name"] not in known:
                    problems.append(f"{where}: {variable['name']} is no setting")
            if _reads_secret(container, "tunery-api-keys") and not runs(container, "api"):
                problems.append(f"{where}: reads the API keys and is not the API")
            # What keeps files in the bucket: the API, the GPU workers, the inference server, imports.
            args = tunery_args(list(container.get("command", [])))
            keeps_files = args is not None and (
                args.run.__name__ in ("cmd_api", "cmd_inference", "cmd_models_import")
                or (args.run.__name__ == "cmd_worker" and args.queues != WEBHOOK_QUEUE)
            )
            storage_client = workload.labels.get("tunery.dev/storage-client") == "true"
            if keeps_files and not (_reads_secret(container, "tunery-storage") and storage_client):
                problems.append(
                    f"{where}: keeps files in the bucket without its credentials and egress label"
                )
            reads_database = _reads_secret(container, "tunery-database")
            labelled = workload.labels.get("tunery.dev/database-client") == "true"
            if reads_database and not labelled:
                problems.append(f"{where}: reads the database secret without the database-client label")
            for mount in container.get("volumeMounts", []):
                # A StatefulSet's volumeClaimTemplates are no volumes of the pod spec.
                volume = next((v for v in workload.spec.get("volumes", []) if v["name"] == mount["name"]), {})
                claim = volume.get("persistentVolumeClaim", {}).get("claimName")
                if (
                    claim == "tunery-models"
                    and not mount.get("readOnly")
                    and workload.component != "import-model"
                ):
                    problems.append(f"{where}: mounts the base models writable")
        if workload.labels.get("tunery.dev/database-client") == "true" and not any(
            _reads_secret(container, "tunery-database") for container in workload.containers
        ):
            problems.append(f"{workload.name}: labelled a database client but reads no database secret")
    url = config.get("TUNERY_INFERENCE_URL", "")
    services = {
        (service["metadata"]["name"], port["port"]): service
        for service in objects_of(objects, "Service")
        for port in service["spec"]["ports"]
    }
    host_port = url.removeprefix("http://").rstrip("/").split(":")
    if len(host_port) != 2 or (host_port[0], int(host_port[1])) not in services:
        problems.append(f"TUNERY_INFERENCE_URL={url} names no Service port")
    deployments = {obj["metadata"]["name"]: obj for obj in objects_of(objects, "Deployment")}
    for hpa in objects_of(objects, "HorizontalPodAutoscaler"):
        target = deployments.get(hpa["spec"]["scaleTargetRef"]["name"])
        if target is None:
            problems.append(f"HPA {hpa['metadata']['name']} scales no Deployment of these objects")
            continue
        # Utilization is measured against the request: a container without one is never scaled.
        for container in target["spec"]["template"]["spec"]["containers"]:
            if "cpu" not in container.get("resources", {}).get("requests", {}):
                problems.append(f"HPA {hpa['metadata']['name']}: {container['name']} requests no CPU")
    for budget in objects_of(objects, "PodDisruptionBudget"):
        wanted = budget["spec"]["selector"]["matchLabels"].items()
        if not any(all(w.labels.get(k) == v for k, v in wanted) for w in workloads(objects)):
            problems.append(f"PodDisruptionBudget {budget['metadata']['name']} selects no pods")
    for (name, _), service in services.items():
        selected = [
            w
            for w in workloads(objects)
            if all(w.labels.get(k) == v for k, v in service["spec"]["selector"].items())
        ]
        if not selected:
            problems.append(f"Service {name} selects no pods")
        for port in service["spec"]["ports"]:
            opened = {p.get("name") for w in selected for c in w.containers for p in c.get("ports", [])}
            if port.get("targetPort") not in opened:
                problems.append(f"Service {name}: targetPort {port.get('targetPort')} is no port of its pods")
    return problems
