"""What a signal hook may never watch or send: the limits that keep secrets out of events.

A staff user who may add hooks must not be able to read what the admin hides from them:
session keys, password hashes, tokens. So hooks refuse the models of ``auth``,
``sessions``, ``admin`` and ``contenttypes`` (and any named in
``EVENTHUB["HOOKS_REFUSED_MODELS"]``), never put a secret-like field in a payload, a
condition or a subject, and fill subjects with plain field names only.
"""

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models

from eventhub.conf import eventhub_settings

# eventhub writes its own models while emitting: hooking them would loop.
EXCLUDED_APPS = frozenset({"eventhub"})
# Models whose rows are credentials or can grant access (sessions, users, log entries, ...).
PROTECTED_APPS = frozenset({"auth", "sessions", "admin", "contenttypes"})
# A field is secret-like when one of the words of its name (split at "_") is one of these.
SECRET_WORDS = frozenset({
    "password", "passwd", "passphrase", "pwd", "secret", "secrets", "token", "tokens", "salt",
    "hash", "hashed", "otp", "totp", "pin", "credential", "credentials", "apikey", "key", "keys",
    "private",
})  # fmt: skip
_WORDS = re.compile(r"[a-z0-9]+")


def refused_model(model: type[models.Model]) -> str:
    """Why hooks may not watch ``model``; empty when they may."""
    label = model._meta.app_label
    if label in EXCLUDED_APPS:
        return "eventhub's own models cannot be hooked (emitting writes them)."
    extra = {name.lower() for name in eventhub_settings.HOOKS_REFUSED_MODELS}
    if label in PROTECTED_APPS or label in extra or model._meta.label_lower in extra:
        return (
            f"{model._meta.label} holds credentials or access data: hooks may not watch the models "
            f"of {', '.join(sorted(PROTECTED_APPS))} or those in EVENTHUB['HOOKS_REFUSED_MODELS']."
        )
    return ""


def is_secret_name(name: str) -> bool:
    """Whether a field name looks like it holds a secret (password, token, api_key, ...)."""
    lowered = name.lower()
    if lowered in {n.lower() for n in eventhub_settings.HOOKS_SECRET_FIELDS}:
        return True
    return any(word in SECRET_WORDS for word in _WORDS.findall(lowered))


def is_secret_field(field: models.Field) -> bool:
    """Whether ``field`` (by its name or attname) looks like it holds a secret."""
    return is_secret_name(field.name) or is_secret_name(field.attname)


def public_fields(model: type[models.Model]) -> list[models.Field]:
    """The concrete fields of ``model`` that hooks may read."""
    return [f for f in model._meta.concrete_fields if not is_secret_field(f)]


def secret_names(names: Iterable[str]) -> list[str]:
    """Those of ``names`` that look secret."""
    return [name for name in names if is_secret_name(name)]


def subject_placeholders(template: str) -> list[str]:
    """The field names a subject template uses; ValueError unless each is a plain ``{name}``."""
    names = []
    for _literal, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise ValueError(
                f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} is not "
                "a plain field name; use placeholders such as {pk} or {customer_id}"
            )
        names.append(name)
    return names


def render_subject(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with each plain ``{name}`` replaced by ``values[name]``; nothing else is evaluated."""
    subject_placeholders(template)  # the rule the admin applied when saving, again for older rows
    parts = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        parts.append(literal)
        if name is not None:
            parts.append(str(values[name]))
    return "".join(parts)
