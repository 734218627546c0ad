"""Settings for the test suite: the project's own, plus a small app of test handlers.

Subprocess workers started by tests use this module too, so they load the same handlers.
"""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
