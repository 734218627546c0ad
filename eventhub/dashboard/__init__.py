"""/eventhub/ and /metrics: what operators read about deliveries, failures, routes and consumers.

``views`` are thin; ``selectors`` hold the pages' bounded queries; ``stats`` the
per-minute rollups they read; ``charts`` draws SVG on the server; ``metrics`` is
the Prometheus endpoint; ``seeding`` writes synthetic history to try it at scale.
"""

# Only the seeding functions are imported here: ``metrics`` imports prometheus_client, which a
# worker process may import only after Dramatiq's Prometheus middleware has set its multiprocess
# directory (the admin imports this package in every process).
from eventhub.dashboard.seeding import SeedPlan, SeedResult, seed

__all__ = ["SeedPlan", "SeedResult", "seed"]
