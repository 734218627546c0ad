"""manage.py eventhub_worker: Dramatiq worker processes for the consumer queues."""

import os
import sys

from django.core.management.base import BaseCommand, CommandError

from eventhub import broker, discovery, retention, worker
from eventhub.worker import PROMETHEUS_ENV, QUEUES_ENV, UPKEEP_FORK

PROM_HOST_ENV = "dramatiq_prom_host"  # Dramatiq's own variable, spelled its way
# Dramatiq's consumer hands a delayed message (a retry after its backoff, a delivery sent back by
# its route's limits or thread share) to the worker threads only when it wakes: at the next message
# on that delay queue, or after this many idle milliseconds. Dramatiq's default, 1000, made a 50 ms
# backoff or deferral take up to a second; at 100 an idle consumer wakes ten times a second.
WORKER_TIMEOUT_ENV = "dramatiq_worker_timeout"
WORKER_TIMEOUT_MS = 100


class Command(BaseCommand):
    help = (
        "Run Dramatiq worker processes that deliver events from the consumer queues on RabbitMQ. "
        "Without --queues, every queue an enabled route uses is consumed. Stop with SIGTERM or Ctrl-C: "
        "in-flight deliveries finish (or are redelivered) before the processes exit."
    )

    def add_arguments(self, parser):
        parser.add_argument("--queues", nargs="+", metavar="QUEUE", help="Consume only these queues.")
        parser.add_argument(
            "--processes", "-p", type=int, default=os.cpu_count() or 1, help="Worker processes."
        )
        parser.add_argument("--threads", "-t", type=int, default=8, help="Worker threads per process.")
        parser.add_argument(
            "--shutdown-timeout",
            type=int,
            default=30_000,
            help="Milliseconds that a stop waits for in-flight deliveries.",
        )
        parser.add_argument(
            "--no-relay",
            action="store_true",
            help="Don't run the outbox relay and the pruner beside the workers (run manage.py "
            "eventhub_relay and eventhub_prune elsewhere).",
        )

        parser.add_argument(
            "--prometheus",
            action="store_true",
            help="Add Dramatiq's Prometheus middleware: metrics files in $dramatiq_prom_db, an exposition "
            "server on $dramatiq_prom_port (9191), and the same figures in the web process's /metrics.",
        )
        parser.add_argument(
            "--prometheus-host",
            default="",
            help="Address the exposition server listens on (default: $dramatiq_prom_host, else 127.0.0.1; "
            "0.0.0.0 exposes it to the network).",
        )

    def handle(self, *args, queues, processes, threads, shutdown_timeout, no_relay=False, **options):
        if broker.is_embedded():
            raise CommandError(
                "BROKER_URL is not set: the embedded broker delivers inside the web process. "
                "Set BROKER_URL=amqp://guest:guest@127.0.0.1:5672/%2F to run separate workers."
            )
        if processes < 1 or threads < 1:
            raise CommandError("--processes and --threads must be at least 1.")
        try:  # a bad CONSUL_HTTP_ADDR is refused here, not in every worker process
            discovery.discovery_enabled()
        except ValueError as exc:
            raise CommandError(f"CONSUL_HTTP_ADDR: {exc}") from exc
        try:  # a queue of another type than QUEUE_TYPE is refused once, here
            worker.check_queues(queues)
        except broker.QueueTypeMismatch as exc:
            raise CommandError(str(exc)) from None
        try:  # the pruner must never delete what a route may still retry (docs/retention.md)
            retention.check_routes()
        except retention.RetentionTooShort as exc:
            raise CommandError(str(exc)) from exc
        argv = [
            sys.executable,
            "-m",
            "dramatiq",
            "eventhub.worker.boot",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "--worker-shutdown-timeout",
            str(shutdown_timeout),
        ] + fork_functions(relay=not no_relay)
        if options.get("prometheus"):
            os.environ[PROMETHEUS_ENV] = "1"
            # Dramatiq's exporter listens on every interface unless told: loopback unless asked otherwise.
            host = options.get("prometheus_host") or os.environ.get(PROM_HOST_ENV) or "127.0.0.1"
            os.environ[PROM_HOST_ENV] = host
        if queues:
            os.environ[QUEUES_ENV] = ",".join(queues)
            argv += ["--queues", *queues]
        os.environ.setdefault(WORKER_TIMEOUT_ENV, str(WORKER_TIMEOUT_MS))  # an operator's own value stands
        sys.stdout.flush()
        # exec, so that signals from a process manager reach Dramatiq's own handlers directly.
        os.execv(sys.executable, argv)


def fork_functions(*, relay: bool = True) -> list[str]:
    """Extra processes Dramatiq runs beside the workers (the outbox relay)."""
    return ["--fork-function", UPKEEP_FORK] if relay else []
