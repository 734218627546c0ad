"""The per-process table of active hooks, kept fresh without a restart.

Every process (web, worker, shell) holds the hooks in memory, keyed by model, so a
save of a model nobody hooked costs a dict lookup and no query. At most every
``EVENTHUB["HOOKS_REFRESH_SECONDS"]`` the next signal asks the database for a
cheap version of the hook configuration (count and latest update of the hooks and
their event types); only when it moved are the hooks loaded again. Edits in the
current process invalidate the table at once.
"""

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connections, models, router

from eventhub.conf import eventhub_settings
from eventhub.hookspec import HookSpec, m2m_through, spec_from_hook

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HookTable:
    """Enabled hooks by the sender each signal arrives with."""

    save: dict[type, tuple[HookSpec, ...]] = field(default_factory=dict)
    delete: dict[type, tuple[HookSpec, ...]] = field(default_factory=dict)
    m2m: dict[type, tuple[HookSpec, ...]] = field(default_factory=dict)  # keyed by the through model
    watched: dict[type, frozenset[str]] = field(default_factory=dict)  # attnames to remember at load
    by_name: dict[str, HookSpec] = field(default_factory=dict)


def build_table(specs: Iterable[HookSpec]) -> HookTable:
    """Index ``specs`` by sender; a later spec with the same name replaces an earlier one."""
    table = HookTable()
    for spec in {spec.name: spec for spec in specs}.values():
        table.by_name[spec.name] = spec
        if spec.signal == "post_save":
            _add(table.save, spec.model, spec)
            if spec.when == "changed":
                before = table.watched.get(spec.model, frozenset())
                table.watched[spec.model] = before | set(spec.watch_fields)
        elif spec.signal == "post_delete":
            _add(table.delete, spec.model, spec)
        elif spec.signal == "m2m_changed":
            _add(table.m2m, m2m_through(spec.model, spec.m2m_field), spec)
    return table


def _add(index: dict[type, tuple[HookSpec, ...]], key: type, spec: HookSpec) -> None:
    index[key] = (*index.get(key, ()), spec)


class _Cache:
    """The current table, the code hooks, and when the database was last asked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local = threading.local()
        self.code: dict[str, HookSpec] = {}
        self.db: list[HookSpec] = []
        self.version: tuple | None = None
        self.checked = float("-inf")
        # Read from settings at refresh, not per signal: a settings lookup costs more than the check.
        self.interval = 0.0
        self.db_ready = False
        self.loaded = False  # hooks were read from the database at least once
        self.table = HookTable()


_cache = _Cache()


def current() -> HookTable:
    """The hook table, refreshed from the database when the refresh interval has passed."""
    if time.monotonic() - _cache.checked >= _cache.interval:
        refresh()
    return _cache.table


def refresh(*, force: bool = False) -> HookTable:
    """Ask the database whether hooks changed and reload them if so (always with ``force``)."""
    if getattr(_cache.local, "busy", False):
        return _cache.table  # loading hooks instantiates models, which lands here again
    _cache.local.busy = True
    _cache.interval = eventhub_settings.HOOKS_REFRESH_SECONDS
    _cache.checked = time.monotonic()  # also on failure: don't hammer a database that is down
    try:
        _reload_if_changed(force)
    except Exception as exc:  # no database yet, or a test that forbids it: keep what we have
        logger.debug("Signal hooks not refreshed: %s", exc)
    finally:
        _cache.local.busy = False
    return _cache.table


def _reload_if_changed(force: bool) -> None:
    from django.db.models import Count, Max

    from eventhub.models import SignalHook

    if not _cache.db_ready and not _table_exists(SignalHook):
        return
    _cache.db_ready = True
    version = tuple(
        SignalHook.objects.aggregate(
            n=Count("pk"), hooks=Max("updated_at"), types=Max("event_type__updated_at")
        ).values()
    )
    _cache.loaded = True
    if force or version != _cache.version:
        rows = SignalHook.objects.filter(enabled=True).select_related("content_type", "event_type")
        db_specs = [spec for spec in map(_spec_or_none, rows) if spec is not None]
        with _cache.lock:
            _cache.db, _cache.version = db_specs, version
            _rebuild()


def _table_exists(model: type[models.Model]) -> bool:
    # Until migrations have run there is no table; asking would abort a PostgreSQL transaction.
    connection = connections[router.db_for_read(model)]
    return model._meta.db_table in connection.introspection.table_names()


def _spec_or_none(hook) -> HookSpec | None:
    try:
        return spec_from_hook(hook)
    except (LookupError, KeyError) as exc:
        # The model or one of its fields went away since the hook was saved.
        logger.error("Signal hook %r is skipped: %s", hook.name, exc)
        return None


def _rebuild() -> None:
    _cache.table = build_table([*_cache.code.values(), *_cache.db])
    from eventhub.hooks import sync_model_receivers

    sync_model_receivers(watched=_cache.table.watched.keys(), deleted=_cache.table.delete.keys())


def loaded() -> bool:
    """Whether this process has read the hooks from the database yet."""
    return _cache.loaded


def settings_changed() -> None:
    """Re-read HOOKS_REFRESH_SECONDS (override_settings in tests)."""
    _cache.interval = eventhub_settings.HOOKS_REFRESH_SECONDS


def invalidate() -> None:
    """Make the next signal ask the database again (after a hook or event type is edited here)."""
    _cache.checked = float("-inf")
    _cache.version = None


def reset(*, assume_no_db_hooks: bool = True) -> None:
    """Forget admin hooks; with ``assume_no_db_hooks`` also skip the next refresh interval.

    Tests start on an empty database; this keeps one test's hooks out of the next
    without costing a query in tests that never touch hooks.
    """
    with _cache.lock:
        _cache.db, _cache.version = [], None
        _cache.interval = eventhub_settings.HOOKS_REFRESH_SECONDS
        _cache.checked = time.monotonic() if assume_no_db_hooks else float("-inf")
        _rebuild()


def add_code_hook(spec: HookSpec) -> None:
    """Register (or replace) a hook declared in code."""
    with _cache.lock:
        _cache.code[spec.name] = spec
        _rebuild()


def remove_code_hook(name: str) -> None:
    """Forget a hook declared in code."""
    with _cache.lock:
        _cache.code.pop(name, None)
        _rebuild()


def code_hooks() -> list[HookSpec]:
    """The hooks declared in code, by name."""
    return sorted(_cache.code.values(), key=lambda spec: spec.name)
