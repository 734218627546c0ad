"""Workers register themselves in Consul: real ``manage.py eventhub_worker`` processes.

Runs against the Consul agent stand-in, or a real agent when CONSUL_HTTP_ADDR is set;
tests that need the stand-in's powers (forget, stop/start, sub-minute
DeregisterCriticalServiceAfter) skip or narrow on a real agent.
"""

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from eventhub import discovery, emit
from eventhub.discovery import middleware
from eventhub.models import Delivery
from eventhub.worker import lifecycle
from tests.support import factories
from tests.support.consul_fixtures import eventually
from tests.support.process import command_env, run_manage
from tests.support.process import start_worker as start_worker_process
from tests.support.waiting import wait_for

TTL = 1.5  # seconds; the heartbeat passes the check every TTL/3
BOOT_TIMEOUT = 30.0  # a worker process sets Django up and connects to RabbitMQ first


@dataclass
class WorkerProcess:
    proc: subprocess.Popen
    service: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_worker(consul_agent, tmp_path):
    """Start ``manage.py eventhub_worker`` for one queue, registered under a service of its own."""
    started: list[WorkerProcess] = []

    def start(queue: str, *, deregister_after: str = "1m") -> WorkerProcess:
        service = consul_agent.unique_name("workers")
        env = command_env(
            CONSUL_HTTP_ADDR=f"{consul_agent.scheme}://{consul_agent.addr}",
            CONSUL_HTTP_TOKEN=consul_agent.token or "",
            EVENTHUB_CONSUL_SERVICE_NAME=service,
            EVENTHUB_CONSUL_CHECK_TTL=str(TTL),
            EVENTHUB_CONSUL_DEREGISTER_AFTER=deregister_after,
        )
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("w") as out:
            proc = start_worker_process(
                queue,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(WorkerProcess(proc, service, log))
        return started[-1]

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
        try:
            worker.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()


def consumers(agent, service: str, status: str | None = None) -> list[discovery.ConsumerInfo]:
    found = discovery.list_consumers(agent.client(), service)
    return [c for c in found if status is None or c.status == status]


def agent_check(agent, service_id: str) -> dict:
    return agent.client().agent.checks().get(discovery.check_id(service_id)) or {}


def parent_pid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


@pytest.mark.django_db(transaction=True)
def test_a_running_worker_registers_heartbeats_and_vanishes_on_sigterm(
    consul_agent, queue_name, start_worker
):
    worker = start_worker(queue_name)
    [consumer] = eventually(lambda: consumers(consul_agent, worker.service, "passing"), timeout=BOOT_TIMEOUT)

    assert consumer.queues == (queue_name,)
    assert {"testapp.record", "testapp.slow", "testapp.flaky"} <= set(consumer.handlers)
    assert discovery.WORKER_TAG in consumer.tags
    assert consumer.host == socket.gethostname()
    assert parent_pid(consumer.pid) == worker.proc.pid  # a Dramatiq worker process of the command
    assert consumer.meta["version"] == middleware.eventhub_version()
    assert consumer.id == f"{worker.service}-{consumer.host}-{consumer.pid}"

    # Heartbeats: the check outlives its TTL, and its output (the time of the last beat) moves on.
    first = agent_check(consul_agent, consumer.id)["Output"]
    time.sleep(TTL * 1.5)
    check = agent_check(consul_agent, consumer.id)
    assert check["Status"] == "passing"
    assert check["Output"] != first and check["Output"].startswith("eventhub worker alive at ")

    # With DeregisterCriticalServiceAfter at a minute, only the worker's own deregistration
    # can make it vanish this fast.
    worker.proc.send_signal(signal.SIGTERM)
    eventually(lambda: not consumers(consul_agent, worker.service), timeout=5)
    assert worker.proc.wait(timeout=30) == 0, worker.output()


@pytest.mark.django_db(transaction=True)
def test_a_killed_workers_check_goes_critical_and_consul_removes_it(consul_agent, queue_name, start_worker):
    worker = start_worker(queue_name, deregister_after="2s")
    [consumer] = eventually(lambda: consumers(consul_agent, worker.service, "passing"), timeout=BOOT_TIMEOUT)

    os.kill(consumer.pid, signal.SIGKILL)  # no chance to deregister
    [dead] = eventually(lambda: consumers(consul_agent, worker.service, "critical"), timeout=TTL + 5)
    assert dead.id == consumer.id
    assert "TTL expired" in dead.output

    if consul_agent.is_standin:  # a real agent keeps it at least a minute (and reaps every 30 s)
        eventually(lambda: not consumers(consul_agent, worker.service), timeout=10)


@pytest.mark.django_db(transaction=True)
def test_the_worker_registers_again_when_the_agent_forgot_it_and_consumes_through_an_outage(
    consul_agent, rabbitmq_broker, queue_name, start_worker
):
    standin = consul_agent.require_standin("forget() and stop()/start() act on the agent itself")
    route = factories.route(factories.event_type("order.paid"), "testapp.record", queue=queue_name)
    worker = start_worker(queue_name)
    [consumer] = eventually(lambda: consumers(consul_agent, worker.service, "passing"), timeout=BOOT_TIMEOUT)

    standin.forget()  # as an agent restarted without its data directory
    assert consumers(consul_agent, worker.service) == []
    [again] = eventually(lambda: consumers(consul_agent, worker.service, "passing"), timeout=TTL + 5)
    assert again.id == consumer.id and again.queues == (queue_name,)
    assert f"Consul forgot {consumer.id}; registering it again" in worker.output()

    standin.stop()  # the agent is unreachable: deliveries go on
    for n in range(5):
        emit("order.paid", data={"n": n})
    wait_for(lambda: Delivery.objects.filter(route=route, status="succeeded").count() == 5, timeout=30)
    wait_for(lambda: f"Consul heartbeat of {consumer.id} failed" in worker.output(), timeout=TTL + 5)

    standin.forget()  # and it comes back empty
    standin.start()
    [back] = eventually(lambda: consumers(consul_agent, worker.service, "passing"), timeout=TTL + 5)
    assert back.id == consumer.id
    assert worker.proc.poll() is None


# -- the middleware in this process, and when it is installed --------------------------------


def test_discovery_off_installs_no_registration(monkeypatch):
    monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
    kinds = [type(m) for m in lifecycle.lifecycle_middleware()]
    assert middleware.ConsulRegistration not in kinds


def test_a_malformed_consul_address_stops_the_worker_command_at_start():
    result = run_manage("eventhub_worker", env=command_env(CONSUL_HTTP_ADDR="ftp://consul.invalid"))
    assert result.returncode == 1
    assert "CONSUL_HTTP_ADDR: unsupported Consul address 'ftp://consul.invalid'" in result.stderr


def test_the_middleware_registers_a_dramatiq_worker_and_deregisters_it_on_stop(
    consul_agent, monkeypatch, settings
):
    service = consul_agent.unique_name("inprocess")
    settings.EVENTHUB = {**settings.EVENTHUB, "CONSUL_SERVICE_NAME": service}
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"{consul_agent.scheme}://{consul_agent.addr}")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", consul_agent.token or "")
    broker = StubBroker()
    broker.declare_queue("q-a")
    [middleware] = [
        m for m in lifecycle.lifecycle_middleware() if isinstance(m, discovery.ConsulRegistration)
    ]
    broker.add_middleware(middleware)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        [consumer] = eventually(lambda: consumers(consul_agent, service, "passing"))
        assert consumer.queues == ("q-a",) and consumer.pid == os.getpid()
        assert consumer.meta["threads"] == "1"
    finally:
        worker.stop()
    assert consumers(consul_agent, service) == []  # deregistered before stop() returned
