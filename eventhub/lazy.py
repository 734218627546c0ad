"""Package names that load their module on first use.

``eventhub.hooks`` is imported by apps modules before Django has loaded the
models, and ``eventhub.worker.boot`` / ``eventhub.worker.fork`` are imported by
Dramatiq's processes before Django is set up. Their packages therefore import
nothing at import time and resolve their public names on first access instead.
"""

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that finds each public name in its home module (``package.<home>``)."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{home}"), name)

    return __getattr__
