"""A private three-node RabbitMQ cluster for a test, through scripts/rabbitmq-cluster.sh.

Its node names, ports and data directory are its own (never the machine's RabbitMQ
on 5672). Ports are picked free at run time unless RABBITMQ_CLUSTER_PORT_BASE is set.
"""

import os
import random
import re
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "rabbitmq-cluster.sh"
RABBITMQ_BIN = Path(os.environ.get("RABBITMQ_BIN_DIR", "/usr/lib/rabbitmq/bin"))


def unavailable_reason() -> str:
    """Why no cluster can be started here ("" when it can)."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        return f"RabbitMQ is not installed ({RABBITMQ_BIN}/rabbitmq-server missing)"
    return ""


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base() -> int:
    """A base whose AMQP (base+1..3) and distribution (base+11..13) ports are all free."""
    for _ in range(50):
        base = random.randrange(20000, 60000, 20)
        if all(_free(base + n) for n in (1, 2, 3, 11, 12, 13)):
            return base
    raise RuntimeError("no free port range for the RabbitMQ cluster")


class RabbitmqCluster:
    """Three RabbitMQ nodes on loopback, clustered; stop and start them one by one."""

    def __init__(self, directory: Path) -> None:
        base = os.environ.get("RABBITMQ_CLUSTER_PORT_BASE") or str(free_port_base())
        self.env = {
            **os.environ,
            "RABBITMQ_CLUSTER_NAME": os.environ.get("RABBITMQ_CLUSTER_NAME") or f"ehtest{os.getpid()}",
            "RABBITMQ_CLUSTER_PORT_BASE": base,
            "RABBITMQ_CLUSTER_DIR": str(directory),
        }
        self.name = self.env["RABBITMQ_CLUSTER_NAME"]
        self.running = {1, 2, 3}

    def script(self, *args: str, timeout: float = 240) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        command = " ".join(args)
        assert done.returncode == 0, f"rabbitmq-cluster.sh {command} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    def start(self) -> "RabbitmqCluster":
        self.script("start")
        return self

    def remove(self) -> None:
        self.script("reset", timeout=120)

    @property
    def urls(self) -> str:
        """BROKER_URL listing the three nodes."""
        return self.script("urls").strip()

    def node(self, n: int) -> str:
        return f"{self.name}_{n}@localhost"

    def stop_node(self, n: int) -> None:
        self.script("stop-node", str(n))
        self.running.discard(n)

    def start_node(self, n: int) -> None:
        self.script("start-node", str(n))
        self.running.add(n)

    def leader_of(self, queue: str, vhost: str = "/") -> int:
        """The number of the node leading the quorum queue ``queue``."""
        asked = min(self.running)
        listing = self.script("ctl", str(asked), "-q", "list_queues", "-p", vhost, "name", "leader")
        for line in listing.splitlines():
            name, _, leader = line.partition("\t")
            if name == queue:
                found = re.fullmatch(rf"{re.escape(self.name)}_(\d)@localhost", leader.strip())
                assert found, f"queue {queue} has no leader yet: {line!r}"
                return int(found.group(1))
        raise AssertionError(f"queue {queue} not found on {self.node(asked)}:\n{listing}")
