"""Signal hooks: emit events when models are saved, deleted or have m2m links changed.

Hooks come from two places and run through the same machinery:

* the admin (``SignalHook`` rows), picked up by every process within a few seconds;
* code, for teams who keep configuration in code::

      from eventhub import hooks
      hooks.on_save(Order, "order.paid", when="changed", fields=["status"],
                    condition={"status": ["paid"]})

The event is written by ``emit()`` inside the save's transaction (the outbox): a
rollback emits nothing. A hook that cannot emit (schema refuses the payload, unknown
event type, failing ``to_event_data()``) never breaks the save: it is logged and
recorded as a ``HookFailure``. Django sends no signals for ``bulk_create`` or
``QuerySet.update()``; use :func:`emit_for` for those.
"""

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, models, transaction
from django.db.models import signals

from eventhub import hook_table
from eventhub.errors import EmitError, UnknownEventType
from eventhub.hookspec import (
    EXCLUDED_APPS,
    M2M_ACTIONS,
    HookSpec,
    attnames,
    config_errors,
    m2m_relation,
    spec_from_hook,
    split_names,
)
from eventhub.payloads import build_payload, build_subject, changed_fields, field_values, snapshot
from eventhub.routing import match

logger = logging.getLogger(__name__)

Payload = None | str | Iterable[str] | Callable[[models.Model], Any]

__all__ = ["code_hooks", "emit_for", "on_delete", "on_m2m", "on_save", "unregister"]


# --- hooks declared in code --------------------------------------------------


def on_save(
    model: type[models.Model] | str,
    event_type: str,
    *,
    when: str = "always",
    fields: Iterable[str] = (),
    condition: dict | None = None,
    payload: Payload = None,
    subject: str = "",
    name: str | None = None,
) -> HookSpec:
    """Emit ``event_type`` when ``model`` is saved.

    ``when``: "always", "created", "updated" or "changed" (an update that changed one of
    ``fields``). ``condition``: a route-filter pattern over the field values.
    ``payload``: None (``to_event_data()`` when the model has one, else every field), a
    list of field names, "method", or a callable taking the instance. ``subject``: a
    template such as "order/{pk}"; empty gives ``<app_label>.<model>/<pk>``.
    """
    return _declare(model, "post_save", event_type, when=when, watch=fields, condition=condition,
                    payload=payload, subject=subject, name=name)  # fmt: skip


def on_delete(
    model: type[models.Model] | str,
    event_type: str,
    *,
    condition: dict | None = None,
    payload: Payload = None,
    subject: str = "",
    name: str | None = None,
) -> HookSpec:
    """Emit ``event_type`` when an instance of ``model`` is deleted; options as :func:`on_save`."""
    return _declare(model, "post_delete", event_type, condition=condition, payload=payload,
                    subject=subject, name=name)  # fmt: skip


def on_m2m(
    model: type[models.Model] | str,
    field: str,
    event_type: str,
    *,
    actions: Iterable[str] = M2M_ACTIONS,
    condition: dict | None = None,
    payload: Payload = None,
    subject: str = "",
    name: str | None = None,
) -> HookSpec:
    """Emit ``event_type`` when the many-to-many ``field`` of ``model`` gains or loses links.

    The data is the object's payload plus ``"m2m": {"field", "action", "pks"}``.
    """
    unknown = set(actions) - set(M2M_ACTIONS)
    if unknown:
        raise ImproperlyConfigured(f"Unknown m2m actions {sorted(unknown)}; use {M2M_ACTIONS}.")
    return _declare(model, "m2m_changed", event_type, m2m_field=field, m2m_actions=tuple(actions),
                    condition=condition, payload=payload, subject=subject, name=name)  # fmt: skip


def _declare(model: type[models.Model] | str, signal: str, event_type: str, **options: Any) -> HookSpec:
    spec = _code_spec(_resolve_model(model), signal, event_type, **options)
    hook_table.add_code_hook(spec)
    return spec


def _code_spec(
    model: type[models.Model],
    signal: str,
    event_type: str,
    *,
    when: str = "always",
    watch: Iterable[str] = (),
    condition: dict | None = None,
    payload: Payload = None,
    subject: str = "",
    name: str | None = None,
    m2m_field: str = "",
    m2m_actions: tuple[str, ...] = M2M_ACTIONS,
) -> HookSpec:
    fields, method, func = _payload_options(model, payload)
    watch = split_names(watch)
    errors = config_errors(model, signal=signal, when=when, watch_fields=watch, condition=condition,
                           m2m_field=m2m_field, payload_method=method, payload_fields=fields,
                           subject=subject)  # fmt: skip
    if errors:
        detail = "; ".join(f"{key}: {message}" for key, message in errors.items())
        raise ImproperlyConfigured(f"Invalid hook for {model._meta.label} -> {event_type}: {detail}")
    return HookSpec(
        name=name or f"{model._meta.label_lower}:{signal}:{event_type}",
        model=model,
        signal=signal,
        event_type=event_type,
        when=when,
        watch_fields=attnames(model, watch),
        condition=condition or {},
        m2m_field=m2m_field,
        m2m_actions=m2m_actions,
        payload_fields=attnames(model, fields),
        payload_method=method,
        payload_func=func,
        subject=subject,
    )


def _payload_options(model: type[models.Model], payload: Payload) -> tuple[list[str], bool, Callable | None]:
    if callable(payload):
        return [], False, payload
    if payload is None:
        return [], callable(getattr(model, "to_event_data", None)), None
    if payload == "method":
        return [], True, None
    return split_names(payload), False, None


def _resolve_model(model: type[models.Model] | str) -> type[models.Model]:
    if isinstance(model, str):
        from django.apps import apps

        return apps.get_model(model)
    return model


def unregister(name: str) -> None:
    """Remove a hook declared in code (by its name)."""
    hook_table.remove_code_hook(name)


def code_hooks() -> list[HookSpec]:
    """Every hook declared in code, by name (the admin shows these read-only)."""
    return hook_table.code_hooks()


# --- what the receivers call ---------------------------------------------------


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
        if _save_fires(spec, instance, created) and _condition_holds(spec, instance):
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
        if _condition_holds(spec, instance):
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
            if _condition_holds(spec, instance):
                fire(spec, instance, m2m=change)
        elif pk_set:  # changed from the other side: one event per object of the hooked model
            for obj in spec.model._default_manager.filter(pk__in=pk_set):
                change = {"field": spec.m2m_field, "action": verb, "pks": [instance.pk]}
                if _condition_holds(spec, obj):
                    fire(spec, obj, m2m=change)


def _condition_holds(spec: HookSpec, instance: models.Model) -> bool:
    return not spec.condition or match(spec.condition, field_values(instance))


def _watch_config_changes(model: type[models.Model]) -> None:
    from eventhub.models import EventType, SignalHook

    if model is SignalHook:
        # This process sees its own edits at once: load now, so that a delete hook is
        # listening before the next delete (post_delete receivers are per model).
        hook_table.invalidate()
        hook_table.refresh()
    elif model is EventType:
        hook_table.invalidate()  # a renamed type: reload at the next signal


# --- emitting ----------------------------------------------------------------------


def fire(spec: HookSpec, instance: models.Model, *, m2m: dict | None = None) -> None:
    """Emit ``spec``'s event for ``instance`` in the current transaction; never raises for bad data.

    Problems with the payload or the event type are logged and recorded as a HookFailure;
    database errors propagate, as they would for the save itself.
    """
    from eventhub.publishing import emit

    data = None
    try:
        data = build_payload(spec, instance)
        if m2m is not None:
            data = {**data, "m2m": m2m} if isinstance(data, dict) else {"object": data, "m2m": m2m}
        subject = build_subject(spec, instance)
    except Exception as exc:
        record_failure(spec, instance, f"Building the payload failed: {type(exc).__name__}: {exc}", data)
        return
    try:
        emit(spec.event_type, data, subject=subject)
    except EmitError as exc:
        record_failure(spec, instance, str(exc), data)


def record_failure(spec: HookSpec, instance: models.Model, error: str, data: Any = None) -> None:
    """Log a hook that could not emit and keep a HookFailure row for operators."""
    from eventhub.models import HookFailure

    logger.warning("Signal hook %r on %s/%s did not emit: %s", spec.name, spec.label, instance.pk, error)
    try:
        with transaction.atomic():  # a savepoint: a failed insert must not spoil the user's transaction
            HookFailure.objects.create(
                hook_id=spec.hook_id,
                hook_name=spec.name,
                event_type=spec.event_type,
                model=spec.label,
                object_pk=str(instance.pk),
                error=error,
                data=data,
            )
    except DatabaseError:
        logger.exception("Could not record the failure of signal hook %r", spec.name)


# --- bulk operations ------------------------------------------------------------


def emit_for(
    objects: Iterable[models.Model], event_type: str | None = None, *, hook: str | None = None
) -> list:
    """Emit events for objects that changed without signals (bulk_create, QuerySet.update).

    With ``hook``, that hook's (admin or code) payload, subject and condition apply;
    with ``event_type``, the payload is ``to_event_data()`` or every field. All events
    are written in one transaction, and unlike hooks this raises on invalid data
    (InvalidEventData, UnknownEventType): nothing is emitted then.
    """
    from eventhub.publishing import EventSpec, emit_many

    objs = list(objects)
    if not objs:
        return []
    spec = _spec_for_bulk(type(objs[0]), event_type, hook)
    specs = [
        EventSpec(type=spec.event_type, data=build_payload(spec, obj), subject=build_subject(spec, obj))
        for obj in objs
        if _condition_holds(spec, obj)
    ]
    return emit_many(specs)


def _spec_for_bulk(model: type[models.Model], event_type: str | None, hook: str | None) -> HookSpec:
    if (event_type is None) == (hook is None):
        raise TypeError("emit_for() needs either an event type or a hook name.")
    if event_type is not None:
        return _code_spec(model, "post_save", event_type, name=f"emit_for:{event_type}")
    spec = hook_table.current().by_name.get(hook) or _admin_spec(hook)
    if not issubclass(model, spec.model):
        raise TypeError(f"Hook {hook!r} is for {spec.model._meta.label}, not {model._meta.label}.")
    return spec


def _admin_spec(name: str) -> HookSpec:
    from eventhub.models import SignalHook

    try:
        return spec_from_hook(SignalHook.objects.select_related("content_type", "event_type").get(name=name))
    except SignalHook.DoesNotExist:
        raise UnknownEventType(f"No signal hook is named {name!r}.") from None


# --- receivers: connected once in EventhubConfig.ready() ------------------------------


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
    from django.core.signals import setting_changed

    from eventhub.models import EventType, SignalHook

    setting_changed.connect(_on_setting_changed, dispatch_uid="eventhub.hooks.setting_changed")
    signals.post_init.connect(_on_first_post_init, dispatch_uid=_FIRST_INIT_UID)
    signals.post_save.connect(_on_post_save, dispatch_uid="eventhub.hooks.post_save")
    signals.m2m_changed.connect(_on_m2m_changed, dispatch_uid="eventhub.hooks.m2m_changed")
    for model in (SignalHook, EventType):
        uid = f"eventhub.hooks.post_delete.{model._meta.label_lower}"
        signals.post_delete.connect(_on_post_delete, sender=model, dispatch_uid=uid)


_FIRST_INIT_UID = "eventhub.hooks.post_init.first"
_connected: dict[str, set[type]] = {"post_init": set(), "post_delete": set()}


def sync_model_receivers(*, watched: Iterable[type], deleted: Iterable[type]) -> None:
    """Listen to post_init and post_delete only for the models that need them.

    Any post_init receiver costs every model instance; any post_delete listener makes Django
    load each row a cascade deletes instead of deleting them in one query.
    """
    _sync(signals.post_init, _on_post_init, "post_init", set(watched))
    _sync(signals.post_delete, _on_post_delete, "post_delete", set(deleted))


def _sync(signal: signals.ModelSignal, receiver: Callable, kind: str, wanted: set[type]) -> None:
    current = _connected[kind]
    for model in wanted - current:
        signal.connect(receiver, sender=model, dispatch_uid=_uid(kind, model))
    for model in current - wanted:
        signal.disconnect(sender=model, dispatch_uid=_uid(kind, model))
    _connected[kind] = wanted


def _uid(kind: str, model: type) -> str:
    return f"eventhub.hooks.{kind}.hooked.{model._meta.label_lower}"
