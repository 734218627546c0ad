"""Database plumbing under the flow: batched SQL, relaxed commits, combined writes, per-process copies.

``sqlbatch`` runs several writes as one PostgreSQL statement; ``durability``
commits bookkeeping without waiting for the disk; ``combining`` lets many threads'
small writes run as one; ``process_cache`` keeps rarely edited rows in memory;
``locking`` lets one of several processes take a batch of rows, or a named lock.
"""

from eventhub.db import combining, durability, locking, process_cache, sqlbatch
from eventhub.db.combining import Combiner
from eventhub.db.locking import lockable, take_write_lock_if_needed, try_advisory_lock
from eventhub.db.process_cache import ProcessCache

__all__ = [
    "Combiner",
    "ProcessCache",
    "combining",
    "durability",
    "lockable",
    "locking",
    "process_cache",
    "sqlbatch",
    "take_write_lock_if_needed",
    "try_advisory_lock",
]
