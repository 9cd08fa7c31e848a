"""A Ray cluster of CPU nodes, each in a network namespace of the test's own, for tests/cluster/.

This machine may talk only to loopback or to hosts the test makes itself, and Ray binds and connects
to the machine's interface address even when told 127.0.0.1. So each Ray node (the head, then the
workers) runs in a network namespace that holds only its loopback and one end of a veth pair, whose
other end is on a bridge in the root namespace with a private subnet: the test's own hosts. The
Tunery worker (the driver) reaches the head's Job Submission API from the bridge's address. The
namespaces share the disk, as nodes of a production cluster share the bucket.

Teardown kills every process in each namespace (`ip netns pids`) and removes the namespaces, the
veth pairs and the bridge, whatever the test did.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_PORT = 8265


def missing_prerequisite() -> str | None:
    """Why a namespaced cluster cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if shutil.which("ss") is None:
        return "iproute2's `ss` is not installed"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install -e '.[cluster]')"
    return None


@dataclass
class Node:
    namespace: str
    address: str
    veth: str


@dataclass
class RayCluster:
    prefix: str
    subnet: ipaddress.IPv4Network
    bridge: str
    gateway: str
    nodes: list[Node]
    temp: Path

    @property
    def head(self) -> Node:
        return self.nodes[0]

    @property
    def address(self) -> str:
        """TUNERY_RAY_ADDRESS: the head's dashboard, where the Job Submission API answers."""
        return f"http://{self.head.address}:{DASHBOARD_PORT}"

    def kill_node(self, index: int) -> list[int]:
        """SIGKILL every process of node `index` (its raylet, Ray workers and trainer ranks)."""
        pids = namespace_pids(self.nodes[index].namespace)
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def sockets(self) -> dict[str, list[dict[str, str]]]:
        """Every TCP socket of each node's namespace, as `ss` tells them."""
        return {node.namespace: tcp_sockets(node.namespace) for node in self.nodes}


def namespace_pids(namespace: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def tcp_sockets(namespace: str | None = None) -> list[dict[str, str]]:
    """TCP sockets, listening and connected: state, local, peer, process (ss -tanp)."""
    command = ["ss", "-tanpH"]
    if namespace is not None:
        command = ["ip", "netns", "exec", namespace, *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    sockets = []
    for line in out.splitlines():
        fields = line.split(None, 5)
        if len(fields) >= 5:
            state, local, peer = fields[0], fields[3], fields[4]
            sockets.append({"state": state, "local": local, "peer": peer, "process": "".join(fields[5:])})
    return sockets


def host_of(endpoint: str) -> str:
    """'[::ffff:10.0.0.2]:80' -> '10.0.0.2', '*:80' -> '*'."""
    host = endpoint.rsplit(":", 1)[0].strip("[]")
    host = host.split("%", 1)[0]
    return host.removeprefix("::ffff:")


def interface_addresses(namespace: str | None = None) -> set[str]:
    """The addresses of the namespace's interfaces other than loopback."""
    command = ["ip", "-j", "addr"]
    if namespace is not None:
        command = ["ip", "netns", "exec", namespace, *command]
    links = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    return {
        info["local"] for link in links if link.get("ifname") != "lo" for info in link.get("addr_info", [])
    }


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.231.X.0/24 that no interface of the root namespace is on (tests may run side by side)."""
    used = {ipaddress.ip_address(address) for address in interface_addresses() if ":" not in address}
    for step in range(200):
        subnet = ipaddress.ip_network(f"10.231.{(os.getpid() + step) % 200 + 20}.0/24")
        if not any(address in subnet for address in used):
            return subnet
    raise RuntimeError("no free 10.231.X.0/24 subnet for a test cluster")


def _ip(*args: str, namespace: str | None = None) -> None:
    command = ["ip", *args] if namespace is None else ["ip", "netns", "exec", namespace, "ip", *args]
    subprocess.run(command, check=True, capture_output=True)


@contextmanager
def ray_cluster(nodes: int = 2, cpus_per_node: int = 1) -> Iterator[RayCluster]:
    tag = f"{os.getpid() % 100000:05d}"
    subnet = _free_subnet()
    hosts = list(subnet.hosts())
    temp = Path(tempfile.mkdtemp(prefix="tray", dir="/tmp"))  # short: Ray's unix sockets live here
    cluster = RayCluster(f"tr{tag}", subnet, f"tr{tag}br", str(hosts[0]), [], temp)
    try:
        _ip("link", "add", cluster.bridge, "type", "bridge")
        _ip("addr", "add", f"{cluster.gateway}/{subnet.prefixlen}", "dev", cluster.bridge)
        _ip("link", "set", cluster.bridge, "up")
        for index in range(nodes):
            node = Node(f"tr{tag}-n{index}", str(hosts[index + 1]), f"tr{tag}v{index}")
            cluster.nodes.append(node)
            _ip("netns", "add", node.namespace)
            _ip("link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.namespace)
            _ip("link", "set", node.veth, "master", cluster.bridge)
            _ip("link", "set", node.veth, "up")
            _ip("addr", "add", f"{node.address}/{subnet.prefixlen}", "dev", "eth0", namespace=node.namespace)
            _ip("link", "set", "eth0", "up", namespace=node.namespace)
            _ip("link", "set", "lo", "up", namespace=node.namespace)
        for index, node in enumerate(cluster.nodes):
            _start_node(cluster, index, node, cpus_per_node)
        yield cluster
    finally:
        _tear_down(cluster)


def _start_node(cluster: RayCluster, index: int, node: Node, cpus: int) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TUNERY_", "RAY_"))},
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PYTHONPATH": str(REPO),  # the nodes run this tree's Tunery, as a cluster runs the worker image
        "RAY_USAGE_STATS_ENABLED": "0",
        # gloo between nodes over the veth (a pod's eth0 in production), never a guessed address.
        "GLOO_SOCKET_IFNAME": "eth0",
    }
    command = [
        str(Path(bin_dir, "ray")),
        "start",
        f"--node-ip-address={node.address}",
        f"--num-cpus={cpus}",
        "--num-gpus=0",
        "--object-store-memory=100000000",
        f"--temp-dir={cluster.temp / f'n{index}'}",
        "--disable-usage-stats",
    ]
    if index == 0:
        command += [
            "--head",
            "--port=6379",
            "--include-dashboard=true",
            f"--dashboard-host={node.address}",
            f"--dashboard-port={DASHBOARD_PORT}",
        ]
    else:
        command.append(f"--address={cluster.head.address}:6379")
    log = cluster.temp / f"ray-start-n{index}.log"
    with log.open("wb") as out:
        done = subprocess.run(
            ["ip", "netns", "exec", node.namespace, *command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cluster.temp,
            timeout=120,
        )
    if done.returncode != 0:
        raise RuntimeError(f"ray start on {node.namespace} failed:\n{log.read_text()[-3000:]}")


def _tear_down(cluster: RayCluster) -> None:
    for node in cluster.nodes:
        deadline = time.monotonic() + 20
        while (pids := namespace_pids(node.namespace)) and time.monotonic() < deadline:
            for pid in pids:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
    for node in cluster.nodes:
        subprocess.run(["ip", "netns", "del", node.namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", node.veth], capture_output=True)
    subprocess.run(["ip", "link", "del", cluster.bridge], capture_output=True)
    shutil.rmtree(cluster.temp, ignore_errors=True)


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with suppress(OSError, ValueError, IndexError):
                stat = (proc / "stat").read_text()
                parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return found


def _pids_of(process: str) -> set[int]:
    return {int(part.split("=", 1)[1]) for part in process.split(",") if part.startswith("pid=")}


def _commands(pids: set[int]) -> list[str]:
    commands = []
    for pid in sorted(pids):
        with suppress(OSError):
            commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
    return commands


WILDCARDS = {"*", "0.0.0.0", "::"}


class SocketWatch:
    """Samples `ss` in the root namespace and in each node's while a test runs, keeping what breaks
    the machine's rule: a socket of ours (this test's process tree: the API, the worker, its
    trainers) on the machine's own interface address, a listener of ours on every address of the root
    namespace, or any socket of a node to anything but loopback and the test's hosts."""

    def __init__(self, cluster: RayCluster) -> None:
        self.cluster = cluster
        self.machine = interface_addresses() - {cluster.gateway}
        self.offending: list[str] = []
        self.driver_connections = 0
        """Connections seen from the bridge's address to the head's dashboard: the driver's."""
        self.cross_node_connections = 0
        """Connections seen between two nodes' addresses: Ray's and the ranks' own."""

    def sample(self) -> None:
        ours = _descendants(os.getpid())
        for socket in tcp_sockets():
            local, peer = host_of(socket["local"]), host_of(socket["peer"])
            owners = _pids_of(socket["process"])
            if local in self.machine or peer in self.machine:
                # Other sessions share this machine's root namespace: only our processes are judged.
                if owners & ours:
                    self.offending.append(f"root namespace: {socket} {_commands(owners)}")
            elif socket["state"] == "LISTEN" and local in WILDCARDS and owners & ours:
                self.offending.append(f"root namespace, a listener of ours on every address: {socket}")
            if local == self.cluster.gateway and socket["peer"].endswith(f":{DASHBOARD_PORT}"):
                self.driver_connections += 1
        nodes = {node.address for node in self.cluster.nodes}
        for namespace, sockets in self.cluster.sockets().items():
            for socket in sockets:
                local, peer = host_of(socket["local"]), host_of(socket["peer"])
                for host in (local, peer):
                    if host not in WILDCARDS and not self._allowed(host):
                        self.offending.append(f"{namespace}: {socket}")
                        break
                if local in nodes and peer in nodes and local != peer:
                    self.cross_node_connections += 1

    def _allowed(self, host: str) -> bool:
        address = ipaddress.ip_address(host)
        return address.is_loopback or address in self.cluster.subnet
