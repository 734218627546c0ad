"""The per-process table of active hooks, kept fresh without a restart.

Every process (web, worker, shell) holds the hooks in memory, keyed by model, so a
save of a model nobody hooked costs a dict lookup and no query. At most every
``EVENTHUB["HOOKS_REFRESH_SECONDS"]`` the next signal asks the database for a
cheap version of the hook configuration (count and latest update of the hooks and
their event types); only when it moved are the hooks loaded again. Edits in the
current process invalidate the table at once (see eventhub.db.process_cache).

Hooks declared in code live here too; the table merges both sources.
"""

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import connections, models, router
from django.db.models import Count, Max

from eventhub.conf import eventhub_settings
from eventhub.db import ProcessCache
from eventhub.hooks.spec import HookSpec, m2m_through, spec_from_hook
from eventhub.models import SignalHook

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


@dataclass(frozen=True)
class _AdminHooks:
    """The enabled admin hooks as last read, and the version they were read at."""

    version: tuple | None = None
    specs: tuple[HookSpec, ...] = ()


_NONE = _AdminHooks()


def _load(previous: _AdminHooks | None) -> _AdminHooks:
    if not _table_exists(SignalHook):
        return previous or _NONE
    version = tuple(
        SignalHook.objects.aggregate(
            n=Count("pk"), hooks=Max("updated_at"), types=Max("event_type__updated_at")
        ).values()
    )
    if previous is not None and previous.version == version:
        return previous
    rows = SignalHook.objects.filter(enabled=True).select_related("content_type", "event_type")
    return _AdminHooks(version, tuple(spec for spec in map(_spec_or_none, rows) if spec is not None))


_admin: ProcessCache[_AdminHooks] = ProcessCache(
    _load,
    interval=lambda: eventhub_settings.HOOKS_REFRESH_SECONDS,
    empty=_NONE,
    keep_on_error=True,  # no database yet, or a test that forbids it: keep what we have
    name="signal hooks",
)


class _Merged:
    """The table built from the code hooks and one reading of the admin hooks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.code: dict[str, HookSpec] = {}
        self.built_from: _AdminHooks | None = None
        self.table = HookTable()
        self.listeners: list[Callable[[HookTable], None]] = []


_merged = _Merged()
_tables_seen: set[str] = set()


def current() -> HookTable:
    """The hook table, refreshed from the database when the refresh interval has passed."""
    admin = _admin.get()
    if admin is not _merged.built_from:
        _rebuild(admin)
    return _merged.table


def refresh(*, force: bool = False) -> HookTable:
    """Read the admin hooks now (reloading them when they changed, always with ``force``); the table."""
    if force:
        _admin.invalidate()
    _rebuild(_admin.refresh())
    return _merged.table


def _table_exists(model: type[models.Model]) -> bool:
    # Until migrations have run there is no table; asking would abort a PostgreSQL transaction.
    table = model._meta.db_table
    if table not in _tables_seen:
        connection = connections[router.db_for_read(model)]
        if table not in connection.introspection.table_names():
            return False
        _tables_seen.add(table)
    return True


def _spec_or_none(hook) -> HookSpec | None:
    try:
        return spec_from_hook(hook)
    except (LookupError, KeyError) as exc:
        # The model or one of its fields went away since the hook was saved.
        logger.error("Signal hook %r is skipped: %s", hook.name, exc)
        return None


def _rebuild(admin: _AdminHooks) -> None:
    with _merged.lock:
        _merged.built_from = admin
        _merged.table = build_table([*_merged.code.values(), *admin.specs])
        table, listeners = _merged.table, list(_merged.listeners)
    for listener in listeners:
        listener(table)


def on_rebuild(listener: Callable[[HookTable], None]) -> None:
    """Call ``listener(table)`` now and whenever the table is rebuilt (receivers follow the hooked models)."""
    with _merged.lock:
        if listener not in _merged.listeners:
            _merged.listeners.append(listener)
        table = _merged.table
    listener(table)


def loaded() -> bool:
    """Whether this process has read the hooks from the database yet."""
    return _admin.loaded


def settings_changed() -> None:
    """Re-read HOOKS_REFRESH_SECONDS (override_settings in tests)."""
    _admin.settings_changed()


def invalidate() -> None:
    """Make the next signal read the hooks again (after a hook or event type is edited here)."""
    _admin.invalidate()


def reset(*, assume_no_db_hooks: bool = True) -> None:
    """Forget admin hooks; with ``assume_no_db_hooks`` also skip the next refresh interval.

    Tests start on an empty database; this keeps one test's hooks out of the next
    without costing a query in tests that never touch hooks.
    """
    _admin.reset(fresh=assume_no_db_hooks)
    _rebuild(_NONE)


def add_code_hook(spec: HookSpec) -> None:
    """Register (or replace) a hook declared in code."""
    with _merged.lock:
        _merged.code[spec.name] = spec
    _rebuild(_admin.value)


def remove_code_hook(name: str) -> None:
    """Forget a hook declared in code."""
    with _merged.lock:
        _merged.code.pop(name, None)
    _rebuild(_admin.value)


def code_hooks() -> list[HookSpec]:
    """The hooks declared in code, by name."""
    return sorted(_merged.code.values(), key=lambda spec: spec.name)
