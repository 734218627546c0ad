"""HookSpec: one signal hook as the runtime sees it, whether an operator made it in the
admin or a developer declared it in code; and the checks both sources go through.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.fields.reverse_related import ManyToManyRel

from eventhub.events import PatternError, validate_pattern
from eventhub.hooks import guard

SIGNALS = ("post_save", "post_delete", "m2m_changed")
WHENS = ("always", "created", "updated", "changed")
M2M_ACTIONS = ("add", "remove", "clear")
# How a payload is built: chosen fields, every public field, to_event_data(), or a callable (code only).
PAYLOADS = ("fields", "all", "method", "callable")


@dataclass(frozen=True, eq=False)
class HookSpec:
    """What fires, when, and what it emits. Field names are stored as attnames (customer_id)."""

    name: str
    model: type[models.Model]
    signal: str
    event_type: str
    when: str = "always"
    watch_fields: tuple[str, ...] = ()
    condition: dict[str, Any] = field(default_factory=dict)
    m2m_field: str = ""
    m2m_actions: tuple[str, ...] = M2M_ACTIONS
    payload_fields: tuple[str, ...] = ()
    payload_all: bool = False
    payload_method: bool = False
    payload_func: Callable[[models.Model], Any] | None = None
    subject: str = ""
    origin: str = "code"
    hook_id: int | None = None

    @property
    def label(self) -> str:
        """``app_label.model`` of the hooked model."""
        return self.model._meta.label_lower

    def describe_payload(self) -> str:
        """A short human description of how the payload is built (for the admin)."""
        if self.payload_func is not None:
            return f"{getattr(self.payload_func, '__qualname__', repr(self.payload_func))}(instance)"
        if self.payload_method:
            return "to_event_data()"
        if self.payload_all:
            return "all fields (but secret-like ones)"
        return ", ".join(self.payload_fields)


def split_names(text: str | Iterable[str]) -> list[str]:
    """Field names from a comma-separated string or an iterable, blanks dropped."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return [item.strip() for item in items if item and item.strip()]


def concrete_field(model: type[models.Model], name: str) -> models.Field | None:
    """The concrete, non-m2m field called ``name`` or with attname ``name``; None if there is none."""
    for candidate in model._meta.concrete_fields:
        if name in (candidate.name, candidate.attname):
            return candidate
    return None


def attnames(model: type[models.Model], names: Iterable[str]) -> tuple[str, ...]:
    """Map field names to attnames (customer -> customer_id); unknown names raise KeyError."""
    found = []
    for name in names:
        model_field = concrete_field(model, name)
        if model_field is None:
            raise KeyError(name)
        found.append(model_field.attname)
    return tuple(found)


def m2m_relation(model: type[models.Model], name: str) -> models.Field | ManyToManyRel | None:
    """The many-to-many field (or reverse relation) ``name`` on ``model``, or None."""
    try:
        relation = model._meta.get_field(name)
    except Exception:
        return None
    return relation if relation.many_to_many else None


def m2m_through(model: type[models.Model], name: str) -> type[models.Model]:
    """The through model of the m2m relation ``name``: the sender of its m2m_changed signals."""
    relation = m2m_relation(model, name)
    return relation.remote_field.through if relation.concrete else relation.through


def config_errors(
    model: type[models.Model] | None,
    *,
    signal: str,
    when: str,
    watch_fields: Iterable[str],
    condition: Any,
    m2m_field: str,
    payload: str,
    payload_fields: Iterable[str],
    subject: str,
) -> dict[str, str]:
    """Problems with a hook's configuration, keyed by SignalHook field name; empty when fine."""
    if model is None:
        return {"content_type": "This model is not installed in the project."}
    refused = guard.refused_model(model)
    if refused:
        return {"content_type": refused}
    errors = _signal_errors(model, signal, when, list(watch_fields), m2m_field)
    errors.update(_payload_errors(model, payload, list(payload_fields)))
    condition_error = _condition_error(condition)
    if condition_error:
        errors["condition"] = condition_error
    subject_error = _subject_error(model, subject)
    if subject_error:
        errors["subject"] = subject_error
    return errors


def _signal_errors(
    model: type[models.Model], signal: str, when: str, watch: list[str], m2m_field: str
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if signal not in SIGNALS:
        errors["signal"] = f"Choose one of {', '.join(SIGNALS)}."
    if when not in WHENS:
        errors["when"] = f"Choose one of {', '.join(WHENS)}."
    elif when != "always" and signal != "post_save":
        errors["when"] = "“When” applies to saves only; use “every time” for deletes and m2m changes."
    if when == "changed" and not watch:
        errors["watch_fields"] = "Name the fields whose change should emit."
    errors.update(_field_errors(model, "watch_fields", watch))
    if signal == "m2m_changed" and m2m_relation(model, m2m_field) is None:
        names = ", ".join(f.name for f in model._meta.get_fields() if f.many_to_many) or "none"
        errors["m2m_field"] = f"Name a many-to-many field of {model._meta.label}: {names}."
    elif signal != "m2m_changed" and m2m_field:
        errors["m2m_field"] = "Only m2m_changed hooks name a many-to-many field."
    return errors


def _payload_errors(model: type[models.Model], payload: str, fields: list[str]) -> dict[str, str]:
    if payload not in PAYLOADS:
        return {"payload": f"Choose one of {', '.join(PAYLOADS[:3])}."}
    if payload == "method" and not callable(getattr(model, "to_event_data", None)):
        return {"payload": f"{model._meta.label} has no to_event_data() method."}
    if payload == "fields" and not fields:
        return {"payload_fields": "Name the fields to send, or choose “all fields” as the payload."}
    if payload != "fields" and fields:
        return {"payload_fields": "Fields are chosen only for the “chosen fields” payload."}
    secret = guard.secret_names(fields)
    if secret:
        return {"payload_fields": f"{', '.join(secret)} look{'s' if len(secret) == 1 else ''} secret: "
                "hooks never send password, token, key or secret-like fields."}  # fmt: skip
    return _field_errors(model, "payload_fields", fields)


def _condition_error(condition: Any) -> str:
    try:
        validate_pattern(condition or {})
    except PatternError as exc:
        return str(exc)
    secret = guard.secret_names(condition or {})
    if secret:
        # A condition on a secret would make the hook an oracle for its value, one prefix at a time.
        return f"{', '.join(secret)}: hooks never read secret-like fields, in conditions either."
    return ""


def _field_errors(model: type[models.Model], key: str, names: Iterable[str]) -> dict[str, str]:
    unknown = [name for name in names if concrete_field(model, name) is None]
    if not unknown:
        return {}
    choices = ", ".join(f.name for f in model._meta.concrete_fields)
    return {key: f"Unknown field {', '.join(unknown)} on {model._meta.label}; choose from: {choices}."}


def _subject_error(model: type[models.Model], template: str) -> str:
    if not template:
        return ""
    fields = guard.public_fields(model)
    allowed = {"pk"} | {f.name for f in fields} | {f.attname for f in fields}
    try:
        placeholders = guard.subject_placeholders(template)
    except ValueError as exc:
        return f"Invalid template: {exc}."
    unknown = [name for name in placeholders if name not in allowed]
    if unknown:
        return (
            f"Unknown placeholder {', '.join(unknown)}; use {{pk}} or field names (never secret-like ones)."
        )
    return ""


def spec_from_hook(hook: Any) -> HookSpec:
    """The runtime spec of a SignalHook row (content_type and event_type loaded)."""
    model = hook.content_type.model_class()
    if model is None:
        raise LookupError(f"hook {hook.name!r}: model {hook.content_type} is not installed")
    return HookSpec(
        name=hook.name,
        model=model,
        signal=hook.signal,
        event_type=hook.event_type.name,
        when=hook.when,
        watch_fields=attnames(model, split_names(hook.watch_fields)),
        condition=hook.condition or {},
        m2m_field=hook.m2m_field,
        payload_fields=attnames(model, split_names(hook.payload_fields)),
        payload_all=hook.payload == "all",
        payload_method=hook.payload == "method",
        subject=hook.subject,
        origin="admin",
        hook_id=hook.pk,
    )


def check_hook(hook: Any) -> None:
    """Raise ValidationError (keyed by field) when a SignalHook row is misconfigured; the admin's check."""
    errors = hook_config_errors(hook)
    if errors:
        raise ValidationError(errors)


def hook_config_errors(hook: Any) -> dict[str, str]:
    """config_errors() for a SignalHook row being edited (its model may not be chosen yet)."""
    if not hook.content_type_id:
        return {}
    return config_errors(
        hook.content_type.model_class(),
        signal=hook.signal,
        when=hook.when,
        watch_fields=split_names(hook.watch_fields),
        condition=hook.condition,
        m2m_field=hook.m2m_field,
        payload=hook.payload,
        payload_fields=split_names(hook.payload_fields),
        subject=hook.subject,
    )
