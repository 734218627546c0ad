"""The signal receivers of hooks: connected once in EventhubConfig.ready(), shared by every hook.

A save of a model nobody hooked costs a dict lookup. post_init and post_delete
receivers are connected per hooked model only (see :func:`sync_model_receivers`):
a global one would cost every model instance, or make Django load each row a
cascade deletes.
"""

from collections.abc import Callable

from django.core.signals import setting_changed
from django.db import models
from django.db.models import signals

from eventhub.hooks import table as hook_table
from eventhub.hooks.fire import condition_holds, fire
from eventhub.hooks.guard import EXCLUDED_APPS
from eventhub.hooks.payloads import changed_fields, snapshot
from eventhub.hooks.spec import HookSpec, m2m_relation
from eventhub.hooks.table import HookTable
from eventhub.models import EventType, SignalHook


def handle_init(*, model: type[models.Model], instance: models.Model) -> None:
    """Remember the watched fields' loaded values, for hooks that emit only on change."""
    watched = hook_table.current().watched.get(model)
    if watched:
        snapshot(instance, watched)


def handle_save(*, model: type[models.Model], instance: models.Model, created: bool) -> None:
    """Run the save hooks of ``model`` for ``instance``."""
    if model._meta.app_label in EXCLUDED_APPS:
        _watch_config_changes(model)
        return
    table = hook_table.current()
    specs = table.save.get(model, ())
    for spec in specs:
        if _save_fires(spec, instance, created) and condition_holds(spec, instance):
            fire(spec, instance)
    watched = table.watched.get(model)
    if watched:
        snapshot(instance, watched)  # the next save compares against what this one wrote


def _save_fires(spec: HookSpec, instance: models.Model, created: bool) -> bool:
    if spec.when == "created":
        return created
    if spec.when == "updated":
        return not created
    if spec.when == "changed":
        return not created and bool(changed_fields(instance, spec.watch_fields))
    return True


def handle_delete(*, model: type[models.Model], instance: models.Model) -> None:
    """Run the delete hooks of ``model`` for the deleted ``instance``."""
    if model._meta.app_label in EXCLUDED_APPS:
        _watch_config_changes(model)
        return
    for spec in hook_table.current().delete.get(model, ()):
        if condition_holds(spec, instance):
            fire(spec, instance)


def handle_m2m(
    *, through: type[models.Model], instance: models.Model, action: str, reverse: bool, pk_set: set | None
) -> None:
    """Run the m2m hooks whose relation uses ``through``, for a post_add/remove/clear."""
    verb = action.removeprefix("post_")
    for spec in hook_table.current().m2m.get(through, ()):
        if verb not in spec.m2m_actions:
            continue
        own_side = reverse == (not m2m_relation(spec.model, spec.m2m_field).concrete)
        if own_side and isinstance(instance, spec.model):
            change = {"field": spec.m2m_field, "action": verb, "pks": sorted(pk_set or ())}
            if condition_holds(spec, instance):
                fire(spec, instance, m2m=change)
        elif pk_set:  # changed from the other side: one event per object of the hooked model
            for obj in spec.model._default_manager.filter(pk__in=pk_set):
                change = {"field": spec.m2m_field, "action": verb, "pks": [instance.pk]}
                if condition_holds(spec, obj):
                    fire(spec, obj, m2m=change)


def _watch_config_changes(model: type[models.Model]) -> None:
    if model is SignalHook:
        # This process sees its own edits at once: load now, so that a delete hook is
        # listening before the next delete (post_delete receivers are per model).
        hook_table.invalidate()
        hook_table.refresh()
    elif model is EventType:
        hook_table.invalidate()  # a renamed type: reload at the next signal


def _on_post_init(sender, instance, **kwargs) -> None:
    handle_init(model=sender, instance=instance)


def _on_first_post_init(sender, instance, **kwargs) -> None:
    # Until the first load, every model might be watched: load on the first instance seen,
    # then leave post_init to the per-model receivers (a global one costs every model).
    handle_init(model=sender, instance=instance)
    if hook_table.loaded():
        signals.post_init.disconnect(dispatch_uid=_FIRST_INIT_UID)


def _on_post_save(sender, instance, created, raw=False, **kwargs) -> None:
    if not raw:  # loaddata: fixtures are not events
        handle_save(model=sender, instance=instance, created=created)


def _on_post_delete(sender, instance, **kwargs) -> None:
    handle_delete(model=sender, instance=instance)


def _on_m2m_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        handle_m2m(through=sender, instance=instance, action=action, reverse=reverse, pk_set=pk_set)


def _on_setting_changed(setting, **kwargs) -> None:
    if setting == "EVENTHUB":
        hook_table.settings_changed()


def connect_receivers() -> None:
    """Connect the hook receivers (idempotent, by dispatch_uid)."""
    # Imported here: eventhub.hooks is imported by apps modules, before models can be.
    setting_changed.connect(_on_setting_changed, dispatch_uid="eventhub.hooks.receivers.setting_changed")
    signals.post_init.connect(_on_first_post_init, dispatch_uid=_FIRST_INIT_UID)
    signals.post_save.connect(_on_post_save, dispatch_uid="eventhub.hooks.receivers.post_save")
    signals.m2m_changed.connect(_on_m2m_changed, dispatch_uid="eventhub.hooks.receivers.m2m_changed")
    for model in (SignalHook, EventType):
        uid = f"eventhub.hooks.receivers.post_delete.{model._meta.label_lower}"
        signals.post_delete.connect(_on_post_delete, sender=model, dispatch_uid=uid)
    hook_table.on_rebuild(sync_model_receivers)


_FIRST_INIT_UID = "eventhub.hooks.receivers.post_init.first"
_connected: dict[str, set[type]] = {"post_init": set(), "post_delete": set()}


def sync_model_receivers(table: HookTable) -> None:
    """Listen to post_init and post_delete only for the models that need them.

    Any post_init receiver costs every model instance; any post_delete listener makes Django
    load each row a cascade deletes instead of deleting them in one query.
    """
    _sync(signals.post_init, _on_post_init, "post_init", set(table.watched))
    _sync(signals.post_delete, _on_post_delete, "post_delete", set(table.delete))


def _sync(signal: signals.ModelSignal, receiver: Callable, kind: str, wanted: set[type]) -> None:
    current = _connected[kind]
    for model in wanted - current:
        signal.connect(receiver, sender=model, dispatch_uid=_uid(kind, model))
    for model in current - wanted:
        signal.disconnect(sender=model, dispatch_uid=_uid(kind, model))
    _connected[kind] = wanted


def _uid(kind: str, model: type) -> str:
    return f"eventhub.hooks.receivers.{kind}.hooked.{model._meta.label_lower}"
