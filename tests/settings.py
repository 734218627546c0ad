"""Settings for the test suite: the project's own, plus a small app of test handlers.

Subprocess workers started by tests use this module too, so they load the same handlers.
"""

import os

# Not a secret: the tests' own. Subprocesses (workers, the benchmark) inherit it.
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-production-" + "x" * 20)

from config.settings import *  # noqa: E402, F403
from config.settings import DATABASES, EVENTHUB, INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
# Long-lived threads (embedded and in-test workers) would otherwise keep connections to the test
# database open after their test, and pytest-django could not drop it at the end of the run.
# A worker process that a test starts and kills may keep its connections, as in production (the
# endpoint outage fault test pushes thousands of messages through one).
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("EVENTHUB_TEST_CONN_MAX_AGE", "0"))
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
# Webhook receivers and consul:// instances in the tests listen on loopback, which webhooks may
# not reach in production: allowed here explicitly (docs/security.md). The SSRF tests take it away.
EVENTHUB = {**EVENTHUB, "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8", "::1/128"]}
