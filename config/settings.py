"""Django settings for an eventhub deployment, read from the environment (12-factor).

Every value has an embedded default so that a bare checkout runs: SQLite, an
in-process Dramatiq broker, discovery off. Point it at real services with
DATABASE_URL, BROKER_URL, CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DEBUG = env.bool("DEBUG", default=False)
# A public development key is only ever used with DEBUG on (make run); without DEBUG a missing
# SECRET_KEY refuses to start instead of signing sessions with a key everyone knows.
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random string (python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))'), or set DEBUG=true for a local development run."
        )
    SECRET_KEY = "eventhub-insecure-development-key-change-me"
# Old keys still accepted (sessions, signed values; webhook secrets without EVENTHUB_SECRETS_KEYS).
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Served over HTTPS (HTTPS=true): cookies only over TLS, HSTS, and plain HTTP redirected.
# Behind a proxy that terminates TLS, TRUST_X_FORWARDED_PROTO=true reads its X-Forwarded-Proto.
if env.bool("HTTPS", default=False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "eventhub",
    "shop",  # the demo domain for signal hooks (manage.py eventhub_demo)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "eventhub.tracing.middleware.TraceContextMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Worker threads write outcomes while the web thread writes events: wait for the lock
    # instead of failing, and take it when a transaction begins (IMMEDIATE), because SQLite
    # fails at once, without waiting, when two transactions both try to upgrade a read lock.
    # Tests get a file database that subprocess workers can share.
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=30, transaction_mode="IMMEDIATE")
    _test_db = Path(DATABASES["default"]["NAME"]).with_suffix(".test.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": str(_test_db)}
else:
    # Persistent connections: a worker thread keeps its connection between messages instead of
    # opening one per delivery (a new PostgreSQL backend each time). A connection broken meanwhile
    # fails one message, which is retried, and is then replaced; CONN_HEALTH_CHECKS=true checks
    # before each message instead, at the cost of a round trip.
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", env.bool("CONN_HEALTH_CHECKS", default=False))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))

LOGIN_URL = "/admin/login/"

# eventhub's own settings; eventhub/conf.py gives every key a default.
EVENTHUB = {
    # Empty means the embedded in-process broker; amqp://... means RabbitMQ with publisher confirms;
    # several amqp:// URLs separated by commas are the nodes of one cluster (docs/deployment.md).
    "BROKER_URL": env("BROKER_URL", default=""),
    # "classic" for one RabbitMQ node, "quorum" for a cluster; the quorum queues' delivery limit.
    "QUEUE_TYPE": env("EVENTHUB_QUEUE_TYPE", default="classic"),
    "QUEUE_DELIVERY_LIMIT": env.int("EVENTHUB_QUEUE_DELIVERY_LIMIT", default=20),
    "DEFAULT_SOURCE": env("EVENTHUB_SOURCE", default="/eventhub"),
    # Signal hooks edited in the admin reach every running process within this many seconds.
    "HOOKS_REFRESH_SECONDS": env.float("EVENTHUB_HOOKS_REFRESH_SECONDS", default=3),
    "ROUTES_REFRESH_SECONDS": env.float("EVENTHUB_ROUTES_REFRESH_SECONDS", default=1),
    # The outbox relay: grace period before a pending delivery is sent again, and its pace.
    "RELAY_AFTER_SECONDS": env.float("EVENTHUB_RELAY_AFTER_SECONDS", default=30),
    "RELAY_INTERVAL_SECONDS": env.float("EVENTHUB_RELAY_INTERVAL_SECONDS", default=10),
    # Deliveries of one route emitted together travel in one message, at most this many per message.
    "MESSAGE_BATCH_MAX": env.int("EVENTHUB_MESSAGE_BATCH_MAX", default=100),
    # The embedded broker (no BROKER_URL): how long a process waits at exit for its deliveries in
    # progress before handing the rest back to the relay.
    "EMBEDDED_EXIT_SECONDS": env.float("EVENTHUB_EMBEDDED_EXIT_SECONDS", default=10),
    # This host's name in Consul ids and on deliveries (default: the machine's host name).
    "HOSTNAME": env("EVENTHUB_HOSTNAME", default=""),
    # Consul registration of workers (on when CONSUL_HTTP_ADDR is set): service name, TTL check
    # (heartbeat every TTL/3), and how long a critical worker stays before Consul removes it.
    "CONSUL_SERVICE_NAME": env("EVENTHUB_CONSUL_SERVICE_NAME", default="eventhub-consumer"),
    "CONSUL_CHECK_TTL_SECONDS": env.float("EVENTHUB_CONSUL_CHECK_TTL", default=15),
    "CONSUL_DEREGISTER_AFTER": env("EVENTHUB_CONSUL_DEREGISTER_AFTER", default="1m"),
    # /metrics: the window of its database figures; a bearer token a scraper sends, or the networks
    # it scrapes from (with neither, /metrics answers only with DEBUG on).
    "METRICS_WINDOW_SECONDS": env.int("EVENTHUB_METRICS_WINDOW_SECONDS", default=300),
    "METRICS_TOKEN": env("EVENTHUB_METRICS_TOKEN", default=""),
    "METRICS_ALLOWED_NETWORKS": env.list("EVENTHUB_METRICS_ALLOWED_NETWORKS", default=[]),
    # Webhooks reach public addresses only, unless these networks (CIDRs) are allowed, e.g. the private
    # network of consul:// services. Keys that encrypt webhook secrets (newest first; default SECRET_KEY).
    "WEBHOOK_ALLOWED_NETWORKS": env.list("EVENTHUB_WEBHOOK_ALLOWED_NETWORKS", default=[]),
    # In each worker process, a slow route (attempts this long on average, or hanging) runs on at most
    # this share of the threads (docs/route-limits.md).
    "ROUTE_THREAD_SHARE": env.float("EVENTHUB_ROUTE_THREAD_SHARE", default=0.5),
    "SLOW_ROUTE_SECONDS": env.float("EVENTHUB_SLOW_ROUTE_SECONDS", default=1.0),
    "FAILING_ROUTE_STARTS_PER_SECOND": env.float("EVENTHUB_FAILING_ROUTE_STARTS_PER_SECOND", default=5.0),
    "SECRETS_KEYS": env.list("EVENTHUB_SECRETS_KEYS", default=[]),
    # Endpoint health: the longest a receiver's Retry-After may delay a retry (docs/endpoint-health.md).
    "RETRY_AFTER_MAX_SECONDS": env.float("EVENTHUB_RETRY_AFTER_MAX_SECONDS", default=3600),
    # Retention (docs/retention.md): days finished work is kept, and how often the worker prunes.
    "RETENTION_SUCCEEDED_DAYS": env.int("EVENTHUB_RETENTION_SUCCEEDED_DAYS", default=14),
    "RETENTION_DEAD_DAYS": env.int("EVENTHUB_RETENTION_DEAD_DAYS", default=90),
    "RETENTION_HOOK_FAILURES_DAYS": env.int("EVENTHUB_RETENTION_HOOK_FAILURES_DAYS", default=30),
    "RETENTION_TRIALS_DAYS": env.int("EVENTHUB_RETENTION_TRIALS_DAYS", default=30),
    "RETENTION_ROLLUP_DAYS": env.int("EVENTHUB_RETENTION_ROLLUP_DAYS", default=400),
    "PRUNE_INTERVAL_SECONDS": env.float("EVENTHUB_PRUNE_INTERVAL_SECONDS", default=300),
    "PRUNE_BATCH_SIZE": env.int("EVENTHUB_PRUNE_BATCH_SIZE", default=5_000),
}
if not 1 <= EVENTHUB["RETRY_AFTER_MAX_SECONDS"] <= 7 * 86400:
    # Dramatiq delays a retry by at most 7 days.
    raise ImproperlyConfigured("EVENTHUB_RETRY_AFTER_MAX_SECONDS must be between 1 and 604800 (7 days).")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"require_debug_false": {"()": "django.utils.log.RequireDebugFalse"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "mail_admins": {
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "class": "django.utils.log.AdminEmailHandler",
        },
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "pika": {"level": "WARNING"},
        # Django's own logging gives "django" a console handler of its own; with the root's, every line
        # would be printed twice. Its lines reach the root's handler; errors still mail ADMINS.
        "django": {"handlers": ["mail_admins"], "level": "INFO", "propagate": True},
    },
}
