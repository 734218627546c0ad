"""Hooks declared in code, for teams who keep configuration in code::

    from eventhub import hooks

    hooks.on_save(Order, "order.paid", when="changed", fields=["status"], condition={"status": ["paid"]})

They run through the same machinery as hooks made in the admin (eventhub.hooks.table
merges both); the admin lists them read-only.
"""

from collections.abc import Callable, Iterable
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from eventhub.hooks import table
from eventhub.hooks.spec import M2M_ACTIONS, HookSpec, attnames, config_errors, split_names

Payload = None | str | Iterable[str] | Callable[[models.Model], Any]


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
    ``payload``: None (``to_event_data()`` when the model has one, else every field that is
    not secret-like), a list of field names, "all", "method", or a callable taking the instance.
    ``subject``: a template such as "order/{pk}"; empty gives ``<app_label>.<model>/<pk>``.
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
    spec = code_spec(_resolve_model(model), signal, event_type, **options)
    table.add_code_hook(spec)
    return spec


def code_spec(
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
    mode, fields, func = _payload_options(model, payload)
    watch = split_names(watch)
    errors = config_errors(model, signal=signal, when=when, watch_fields=watch, condition=condition,
                           m2m_field=m2m_field, payload=mode, payload_fields=fields,
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
        payload_all=mode == "all",
        payload_method=mode == "method",
        payload_func=func,
        subject=subject,
    )


def _payload_options(model: type[models.Model], payload: Payload) -> tuple[str, list[str], Callable | None]:
    """(mode, field names, callable) of a code hook's ``payload`` argument."""
    if callable(payload):
        return "callable", [], payload
    if payload is None:
        # In code the default is the model's own choice, else every field that is not secret-like.
        return ("method" if callable(getattr(model, "to_event_data", None)) else "all"), [], None
    if payload in ("method", "all"):
        return payload, [], None
    return "fields", split_names(payload), None


def _resolve_model(model: type[models.Model] | str) -> type[models.Model]:
    if isinstance(model, str):
        return apps.get_model(model)
    return model


def unregister(name: str) -> None:
    """Remove a hook declared in code (by its name)."""
    table.remove_code_hook(name)


def code_hooks() -> list[HookSpec]:
    """Every hook declared in code, by name (the admin shows these read-only)."""
    return table.code_hooks()
