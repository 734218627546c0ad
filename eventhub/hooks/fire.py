"""Emitting for a hook: build the payload and subject, emit in the save's transaction, record failures.

The event is written by ``emit()`` inside the save's transaction (the outbox): a
rollback emits nothing. A hook that cannot emit (schema refuses the payload, unknown
event type, failing ``to_event_data()``) never breaks the save: it is logged and
recorded as a ``HookFailure``. Django sends no signals for ``bulk_create`` or
``QuerySet.update()``; :func:`emit_for` covers those.
"""

import logging
from collections.abc import Iterable
from typing import Any

from django.db import DatabaseError, models, transaction

from eventhub.errors import EmitError, UnknownEventType
from eventhub.events import match
from eventhub.hooks import table
from eventhub.hooks.declare import code_spec
from eventhub.hooks.payloads import build_payload, build_subject, field_values
from eventhub.hooks.spec import HookSpec, spec_from_hook
from eventhub.models import HookFailure, SignalHook
from eventhub.outbox import EventSpec, emit, emit_many

logger = logging.getLogger(__name__)


def condition_holds(spec: HookSpec, instance: models.Model) -> bool:
    """Whether ``instance``'s field values match the hook's condition (no condition: always)."""
    return not spec.condition or match(spec.condition, field_values(instance))


def fire(spec: HookSpec, instance: models.Model, *, m2m: dict | None = None) -> None:
    """Emit ``spec``'s event for ``instance`` in the current transaction; never raises for bad data.

    Problems with the payload or the event type are logged and recorded as a HookFailure;
    database errors propagate, as they would for the save itself.
    """
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


def emit_for(
    objects: Iterable[models.Model], event_type: str | None = None, *, hook: str | None = None
) -> list:
    """Emit events for objects that changed without signals (bulk_create, QuerySet.update).

    With ``hook``, that hook's (admin or code) payload, subject and condition apply;
    with ``event_type``, the payload is ``to_event_data()`` or every field. All events
    are written in one transaction, and unlike hooks this raises on invalid data
    (InvalidEventData, UnknownEventType): nothing is emitted then.
    """
    objs = list(objects)
    if not objs:
        return []
    spec = _spec_for_bulk(type(objs[0]), event_type, hook)
    specs = [
        EventSpec(type=spec.event_type, data=build_payload(spec, obj), subject=build_subject(spec, obj))
        for obj in objs
        if condition_holds(spec, obj)
    ]
    return emit_many(specs)


def _spec_for_bulk(model: type[models.Model], event_type: str | None, hook: str | None) -> HookSpec:
    if (event_type is None) == (hook is None):
        raise TypeError("emit_for() needs either an event type or a hook name.")
    if event_type is not None:
        return code_spec(model, "post_save", event_type, name=f"emit_for:{event_type}")
    spec = table.current().by_name.get(hook) or _admin_spec(hook)
    if not issubclass(model, spec.model):
        raise TypeError(f"Hook {hook!r} is for {spec.model._meta.label}, not {model._meta.label}.")
    return spec


def _admin_spec(name: str) -> HookSpec:
    try:
        return spec_from_hook(SignalHook.objects.select_related("content_type", "event_type").get(name=name))
    except SignalHook.DoesNotExist:
        raise UnknownEventType(f"No signal hook is named {name!r}.") from None
