"""The worker: the Dramatiq actor that receives a delivery id, runs it and records the outcome.

``actor`` is the thin Dramatiq shell; ``deliver`` claims, runs the destination and
records the outcome; ``writes`` combines many threads' claims and outcomes into
one statement; ``lifecycle`` and ``boot`` prepare a worker process; ``rescue`` and
``upkeep`` are the periodic work beside the workers (relay, stuck deliveries);
``fork`` starts that upkeep in its own process; ``handback`` finishes the embedded
broker's deliveries at exit, or hands them back to the relay; ``shaping`` finds the
transform a delivery is sent with; ``trial`` tries a route from its admin page;
``admission`` asks, before the claim, whether a delivery may start: its route's
``limits`` (rate, in flight, shared by every worker through PostgreSQL) and this
process's ``share`` of threads for slow and failing routes.

Dramatiq imports ``boot`` and ``fork`` before Django is set up, so the names below
load on first use (see eventhub.lazy).
"""

from eventhub.lazy import lazy_exports

__all__ = [
    "INTERRUPTED",
    "OUTCOME_NOT_RECORDED",
    "MatchReport",
    "NoRecentEvent",
    "PROMETHEUS_ENV",
    "QUEUES_ENV",
    "UPKEEP_FORK",
    "check_can_try",
    "check_queues",
    "DeliveryFailed",
    "Outcome",
    "OutcomeNotRecorded",
    "deliver",
    "deliver_batch",
    "finish_embedded_work",
    "match_recent",
    "preview_transform",
    "record_interrupted",
    "rescue_stale",
    "run_upkeep",
    "send_trial",
    "transform_for",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "INTERRUPTED": "deliver",
        "OUTCOME_NOT_RECORDED": "deliver",
        "OutcomeNotRecorded": "deliver",
        "DeliveryFailed": "deliver",
        "Outcome": "deliver",
        "deliver": "deliver",
        "deliver_batch": "deliver",
        "finish_embedded_work": "handback",
        "record_interrupted": "deliver",
        "PROMETHEUS_ENV": "lifecycle",
        "QUEUES_ENV": "lifecycle",
        "UPKEEP_FORK": "fork",
        "rescue_stale": "rescue",
        "run_upkeep": "upkeep",
        "MatchReport": "trial",
        "NoRecentEvent": "trial",
        "check_can_try": "trial",
        "check_queues": "lifecycle",
        "match_recent": "trial",
        "preview_transform": "trial",
        "send_trial": "trial",
        "transform_for": "shaping",
    },
)
