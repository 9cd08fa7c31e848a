"""Who may reach whom under the rendered NetworkPolicies, as the API server's semantics say: a pod
selected by a policy of a direction allows, in that direction, only what some policy selecting it
allows; a connection needs the source's egress and the target's ingress. All objects are in one
namespace; an ipBlock stands for addresses outside the cluster (a managed database)."""

from __future__ import annotations

from typing import Any

from tests.deploy.manifests import Manifest, objects_of, workloads

# The components that use Postgres and Redis: the API, the migration, the GPU workers, the webhooks'
# and the evals' workers.
DATABASE_CLIENTS = {"api", "migrate", "worker", "webhooks", "evals"}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert not selector.get("matchExpressions"), "network.py reads matchLabels only"
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def _policies(objects: list[Manifest], labels: dict[str, str], direction: str) -> list[dict[str, Any]]:
    return [
        policy["spec"]
        for policy in objects_of(objects, "NetworkPolicy")
        if direction in policy["spec"].get("policyTypes", ["Ingress"])
        and _selects(policy["spec"]["podSelector"], labels)
    ]


def _port_allowed(rule: dict[str, Any], port: int, port_name: str | None) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(
        entry.get("protocol", "TCP") == "TCP" and entry.get("port") in (None, port, port_name)
        for entry in ports
    )


def _peer_is_pod(peer: dict[str, Any], labels: dict[str, str]) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer and peer["namespaceSelector"] != {}:
        return False  # another namespace's pods: these objects all live in one
    return _selects(peer.get("podSelector", {}), labels)


def _allows(policies: list[dict[str, Any]], key: str, matches: Any, port: int, port_name: str | None) -> bool:
    for policy in policies:
        for rule in policy.get(key, []):
            peers = rule.get("to" if key == "egress" else "from")
            if (not peers or any(matches(peer) for peer in peers)) and _port_allowed(rule, port, port_name):
                return True
    return False


def isolated(objects: list[Manifest], labels: dict[str, str], direction: str) -> bool:
    return bool(_policies(objects, labels, direction))


def may_reach_pod(
    objects: list[Manifest],
    source: dict[str, str],
    target: dict[str, str],
    port: int,
    port_name: str | None = None,
) -> bool:
    egress = _policies(objects, source, "Egress")
    ingress = _policies(objects, target, "Ingress")
    out = not egress or _allows(egress, "egress", lambda peer: _peer_is_pod(peer, target), port, port_name)
    into = not ingress or _allows(
        ingress, "ingress", lambda peer: _peer_is_pod(peer, source), port, port_name
    )
    return out and into


def may_reach_outside(objects: list[Manifest], source: dict[str, str], port: int) -> bool:
    egress = _policies(objects, source, "Egress")
    return not egress or _allows(egress, "egress", lambda peer: "ipBlock" in peer, port, None)


def network_problems(objects: list[Manifest]) -> list[str]:
    problems = []
    pods = {workload.name: workload for workload in workloads(objects)}
    for name, workload in pods.items():
        for direction in ("Ingress", "Egress"):
            if not isolated(objects, workload.labels, direction):
                problems.append(f"{name}: no NetworkPolicy restricts its {direction.lower()}")
    for port, service in ((5432, "postgres"), (6379, "redis")):
        outside = {
            pods[name].component for name in pods if may_reach_outside(objects, pods[name].labels, port)
        }
        if outside != DATABASE_CLIENTS:
            problems.append(
                f"reach {service} outside the cluster (port {port}): {sorted(outside)}, "
                f"not {sorted(DATABASE_CLIENTS)}"
            )
        for target in (workload for workload in pods.values() if workload.component == service):
            inside = {
                source.component
                for source in pods.values()
                if source is not target and may_reach_pod(objects, source.labels, target.labels, port)
            }
            if inside != DATABASE_CLIENTS:
                problems.append(
                    f"reach the in-cluster {service} ({target.name}): {sorted(inside)}, "
                    f"not {sorted(DATABASE_CLIENTS)}"
                )
    for target in (workload for workload in pods.values() if workload.component == "inference"):
        clients = {
            source.component
            for source in pods.values()
            if source is not target and may_reach_pod(objects, source.labels, target.labels, 8001)
        }
        # The eval worker generates only for models the API checked when the run was created.
        if "api" not in clients or not clients <= {"api", "worker", "evals"}:
            problems.append(f"reach the inference server: {sorted(clients)}; it trusts the API's checks")
    return problems
