"""/eventhub/ and /metrics: what operators read about deliveries, failures, routes and consumers.

``views`` are thin; ``selectors`` hold the pages' bounded queries; ``stats`` the
per-minute rollups they read; ``charts`` draws SVG on the server; ``metrics`` is
the Prometheus endpoint; ``seeding`` writes synthetic history to try it at scale.
"""

from eventhub.dashboard import metrics, views
from eventhub.dashboard.seeding import SeedPlan, SeedResult, seed

__all__ = ["SeedPlan", "SeedResult", "metrics", "seed", "views"]
