"""Settings for the test suite: the project's own, plus a small app of test handlers.

Subprocess workers started by tests use this module too, so they load the same handlers.
"""

from config.settings import *  # noqa: F403
from config.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
# Long-lived threads (embedded and in-test workers) would otherwise keep connections to the test
# database open after their test, and pytest-django could not drop it at the end of the run.
DATABASES["default"]["CONN_MAX_AGE"] = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
