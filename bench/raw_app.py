"""Raw Dramatiq: a no-op actor and a latency actor on RabbitMQ with publisher confirms.

The harness imports this to send; ``dramatiq bench.raw_app`` imports it as the
worker (``BENCH_ROLE=raw-worker``), which makes its broker Dramatiq's global one.
Nothing here touches Django or the database: it is the baseline.
"""

import os
import time

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from bench import recorder

BROKER_URL = os.environ.get("BROKER_URL") or "amqp://guest:guest@127.0.0.1:5672/%2F"


def declare(broker: dramatiq.Broker, queue: str) -> tuple[dramatiq.Actor, dramatiq.Actor]:
    """The no-op and latency actors on ``queue`` of ``broker``."""

    def bench_noop(i: int) -> None:
        pass

    def bench_latency(sent: float, phase: str = "") -> None:
        started = time.time()
        recorder.record(f"raw{phase}", started - sent, time.time() - sent)

    return (
        dramatiq.actor(bench_noop, broker=broker, queue_name=queue, max_retries=0),
        dramatiq.actor(bench_latency, broker=broker, queue_name=queue, max_retries=0),
    )


def make_broker() -> RabbitmqBroker:
    """A RabbitMQ broker that waits for each publisher confirm, as eventhub's does."""
    return RabbitmqBroker(url=BROKER_URL, confirm_delivery=True)


if os.environ.get("BENCH_ROLE") == "raw-worker":
    worker_broker = make_broker()
    dramatiq.set_broker(worker_broker)
    declare(worker_broker, os.environ["BENCH_RAW_QUEUE"])
