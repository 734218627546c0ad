"""POST /api/events: events from other services and languages, as CloudEvents, with API tokens.

``views`` are the thin HTTP views (errors as RFC 9457 problem details);
``cloudevents`` parses the three content modes; ``service`` authenticates and
emits each event once; ``tokens`` issues and checks API tokens; ``openapi``
describes the API.
"""

from eventhub.ingest import openapi, tokens, views
from eventhub.ingest.tokens import IssuedToken, assign_new_token, issue_token, revoke

__all__ = ["IssuedToken", "assign_new_token", "issue_token", "openapi", "revoke", "tokens", "views"]
