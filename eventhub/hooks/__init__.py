"""Signal hooks: emit events when models are saved, deleted or have m2m links changed.

Hooks come from two places and run through the same machinery:

* the admin (``SignalHook`` rows), picked up by every process within a few seconds;
* code, for teams who keep configuration in code::

      from eventhub import hooks
      hooks.on_save(Order, "order.paid", when="changed", fields=["status"],
                    condition={"status": ["paid"]})

``declare`` is that API; ``spec`` one hook as the runtime sees it and the checks
both sources pass; ``table`` the per-process table of enabled hooks;
``receivers`` the signal receivers; ``fire`` builds the payload and emits;
``payloads`` reads model instances.

The names below load on first use, so that an app's ``apps`` module may import
this package before Django has loaded the models (they are used in ``ready()``).
"""

from eventhub.lazy import lazy_exports

__all__ = [
    "EXCLUDED_APPS",
    "HookSpec",
    "check_hook",
    "code_hooks",
    "connect_receivers",
    "emit_for",
    "hook_config_errors",
    "on_delete",
    "on_m2m",
    "on_save",
    "refused_model",
    "unregister",
]

_HOMES = {
    "EXCLUDED_APPS": "guard",
    "HookSpec": "spec",
    "check_hook": "spec",
    "hook_config_errors": "spec",
    "refused_model": "guard",
    "code_hooks": "declare",
    "on_delete": "declare",
    "on_m2m": "declare",
    "on_save": "declare",
    "unregister": "declare",
    "emit_for": "fire",
    "connect_receivers": "receivers",
}


__getattr__ = lazy_exports(__name__, _HOMES)
