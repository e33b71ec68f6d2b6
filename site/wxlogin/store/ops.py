"""What operators' tools read from MySQL (issue 16): the pending deletions gauge and the server's facts.

Neither runs per request: ``pending_deletions`` once per metrics scrape, ``server_facts`` once per
configuration check (``server.py --check`` and start-up).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiomysql

from wxlogin.store.db import Database
from wxlogin.store.rows import fetchone


@dataclass(frozen=True)
class ServerFacts:
    """What the configuration check compares with what the app expects (store/migrations.py, store/db.py)."""

    version: str  # e.g. "10.11.6-MariaDB-0+deb12u1"
    charset: str  # the database's default character set
    collation: str  # the database's default collation
    sql_mode: str  # this session's, as the app's connections set it
    clock_skew: float  # MySQL's UTC_TIMESTAMP minus this machine's clock, seconds (the query's midpoint)


class OpsStore:
    """SQL for operators' tools; nothing a login reads or writes."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._has_deletions: bool | None = None  # known once the column exists (it never goes away)

    async def pending_deletions(self) -> int | None:
        """Accounts waiting for the deletion job: ``users.deletion_scheduled_at IS NOT NULL``; None while the
        column does not exist yet (the migration that adds it has not run). A query on a missing column would
        be an OperationalError, which the pool counts against MySQL, so the column is looked up first."""

        async def work(cur: aiomysql.Cursor) -> int | None:
            if not self._has_deletions:
                await cur.execute(
                    "SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                    "AND TABLE_NAME = 'users' AND COLUMN_NAME = 'deletion_scheduled_at'")
                row = await fetchone(cur)
                self._has_deletions = bool(row and row["n"])
                if not self._has_deletions:
                    return None
            await cur.execute("SELECT COUNT(*) AS n FROM users WHERE deletion_scheduled_at IS NOT NULL")
            row = await fetchone(cur)
            return int(row["n"]) if row else 0

        return await self.db.run(work)

    async def server_facts(self) -> ServerFacts:
        """MySQL's version, the database's charset and collation, the session's sql_mode and clock skew."""

        async def work(cur: aiomysql.Cursor) -> ServerFacts:
            before = time.time()
            await cur.execute(
                # UNIX_TIMESTAMP(NOW(3)): the server's clock as epoch seconds, whatever the session's time zone.
                "SELECT VERSION() AS version, @@SESSION.sql_mode AS sql_mode, UNIX_TIMESTAMP(NOW(3)) AS db_now, "
                "(SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()) "
                "AS charset, "
                "(SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()) "
                "AS collation")
            row = await fetchone(cur)
            midpoint = (before + time.time()) / 2
            assert row is not None
            return ServerFacts(version=str(row["version"]), charset=str(row["charset"] or ""),
                               collation=str(row["collation"] or ""), sql_mode=str(row["sql_mode"] or ""),
                               clock_skew=float(row["db_now"]) - midpoint)

        return await self.db.run(work)
