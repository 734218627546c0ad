"""Building an event's data and subject from a model instance, for signal hooks."""

import copy
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from eventhub.hooks import guard
from eventhub.hooks.spec import HookSpec

# Where post_init keeps the loaded values of the fields that hooks watch.
SNAPSHOT_ATTR = "_eventhub_loaded_values"
_CONTAINERS = (dict, list)


class _Encoder(DjangoJSONEncoder):
    """Django's encoder (dates as ISO 8601, Decimal and UUID as strings), str() for the rest."""

    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:
            return str(o)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: what the event will store and consumers will read."""
    return json.loads(json.dumps(value, cls=_Encoder))


def field_values(instance: models.Model, names: tuple[str, ...] = ()) -> dict[str, Any]:
    """The instance's loaded field values keyed by attname, JSON-safe; all when no names.

    Secret-like fields (passwords, tokens, keys; see eventhub.hooks.guard) are never included.
    """
    wanted = set(names)
    values = {}
    for model_field in guard.public_fields(type(instance)):
        attname = model_field.attname
        if (wanted and attname not in wanted) or attname not in instance.__dict__:
            continue  # deferred fields are left out rather than loaded with a query each
        values[attname] = instance.__dict__[attname]
    return json_safe(values)


def build_payload(spec: HookSpec, instance: models.Model) -> Any:
    """The event data for ``instance`` as ``spec`` says: a callable, to_event_data(), or fields."""
    if spec.payload_func is not None:
        return json_safe(spec.payload_func(instance))
    if spec.payload_method:
        return json_safe(instance.to_event_data())
    if spec.payload_all:
        return field_values(instance)
    if not spec.payload_fields:
        raise ValueError("the hook names no fields to send (choose fields or “all fields”)")
    return field_values(instance, spec.payload_fields)


def build_subject(spec: HookSpec, instance: models.Model) -> str:
    """The event subject: the spec's template filled in, or ``<app_label>.<model>/<pk>``."""
    if not spec.subject:
        return f"{instance._meta.label_lower}/{instance.pk}"
    values = {"pk": instance.pk}
    for model_field in guard.public_fields(type(instance)):
        value = instance.__dict__.get(model_field.attname)
        values[model_field.attname] = value
        values.setdefault(model_field.name, value)
    return guard.render_subject(spec.subject, values)


def snapshot(instance: models.Model, attnames: frozenset[str]) -> None:
    """Remember the current values of ``attnames`` so a later save can tell what changed."""
    loaded = instance.__dict__
    # Only containers (JSONField values) can change in place; everything else is kept as is.
    instance.__dict__[SNAPSHOT_ATTR] = {
        name: copy.deepcopy(loaded[name]) if isinstance(loaded[name], _CONTAINERS) else loaded[name]
        for name in attnames
        if name in loaded
    }


def changed_fields(instance: models.Model, attnames: tuple[str, ...]) -> set[str]:
    """Which of ``attnames`` differ from the values remembered at load (or at the last save).

    A field with no remembered value (the hook appeared after the object was loaded)
    counts as changed when it is loaded now: emitting once too often beats missing a change.
    """
    before = instance.__dict__.get(SNAPSHOT_ATTR)
    now = instance.__dict__
    changed = set()
    for name in attnames:
        if name not in now:
            continue  # still deferred: nobody assigned it, so it did not change
        if before is None or name not in before or before[name] != now[name]:
            changed.add(name)
    return changed
