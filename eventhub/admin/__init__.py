"""The operators' pages in the Django admin (autodiscovered as ``eventhub.admin``).

``events``: event types, routes, events, deliveries; ``hooks``: signal hooks and
their failures; ``tokens``: ingest API tokens; ``replay``: replay actions and the
bulk replay page; ``route_try``: a route's "try it" buttons; ``route_health``: a route's
endpoint health, pause and resume. Importing this package
registers them all; nothing else imports it.
"""

from eventhub.admin import events, hooks, replay, route_health, route_try, tokens

__all__ = ["events", "hooks", "replay", "route_health", "route_try", "tokens"]
