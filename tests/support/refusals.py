"""A database that refuses chosen writes: a trigger, switched on and off by a testapp Switch row.

The failure comes from the database itself (PostgreSQL or SQLite), as a full disk, a
lost primary or a broken constraint would, so the code under test sees a real
driver error on its real path.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

MESSAGE = "the database refused the write (test trigger)"


@contextmanager
def refusing(table: str, operation: str, *, switch: str) -> Iterator[None]:
    """Make ``operation`` (INSERT or UPDATE) on ``table`` fail while Switch ``switch`` is on."""
    name = f"eh_refuse_{table}_{operation}".lower()
    when = f"""EXISTS (SELECT 1 FROM testapp_switch WHERE name = '{switch}' AND "on")"""
    if connection.vendor == "postgresql":
        create = [
            f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN IF {when} THEN "
            f"RAISE EXCEPTION '{MESSAGE}'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER {name} BEFORE {operation} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()",
        ]
        drop = [f"DROP TRIGGER {name} ON {table}", f"DROP FUNCTION {name}()"]
    else:
        create = [
            f"CREATE TRIGGER {name} BEFORE {operation} ON {table} WHEN {when} "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        ]
        drop = [f"DROP TRIGGER {name}"]
    _execute(create)
    try:
        yield
    finally:
        _execute(drop)


def _execute(statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
