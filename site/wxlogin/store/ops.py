"""What the configuration check reads from MySQL (issue 16): the server's facts, once per check
(``server.py --check`` and start-up), never per request.
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
    clock_skew: float  # MySQL's NOW() minus this machine's clock, seconds (taken at the query's midpoint)


class OpsStore:
    """SQL for the configuration check; nothing a login reads or writes."""

    def __init__(self, db: Database) -> None:
        self.db = db

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
