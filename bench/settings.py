"""Django settings for the benchmark: the project's own, plus the bench app's handlers.

The harness and its worker processes both use this module, so the workers load
the no-op and latency handlers from bench/consumers.py.
"""

import os

# The benchmark runs locally on throw-away data; a key of its own unless one is set.
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-" + "x" * 20)

from config.settings import *  # noqa: E402, F403
from config.settings import EVENTHUB, INSTALLED_APPS, env  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
# The benchmark measures PostgreSQL: its own database unless DATABASE_URL names one.
if "DATABASE_URL" not in env.ENVIRON:
    DATABASES = {
        "default": {
            **env.db_url_config("postgres://postgres@127.0.0.1:5432/eventhub_bench"),
            "CONN_MAX_AGE": env.int("CONN_MAX_AGE", default=60),
            "CONN_HEALTH_CHECKS": env.bool("CONN_HEALTH_CHECKS", default=False),
        }
    }
# The benchmark is about RabbitMQ: it never runs on the embedded broker.
EVENTHUB = {
    **EVENTHUB,
    "BROKER_URL": env("BROKER_URL", default="amqp://guest:guest@127.0.0.1:5672/%2F"),
    # The webhook phases post to a receiver the bench starts on loopback: allowed here only.
    "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"],
    # The workers' upkeep would prune the seeded history (spread over 30 days) in the middle of a
    # phase: off unless asked for. bench.prune runs the pruner itself, when it measures it.
    "PRUNE_INTERVAL_SECONDS": env.float("EVENTHUB_PRUNE_INTERVAL_SECONDS", default=0),
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
    "loggers": {"pika": {"level": "ERROR"}},
}
