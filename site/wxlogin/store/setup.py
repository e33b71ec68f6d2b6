"""`python -m wxlogin.store.setup`: check that MySQL answers, create the database, apply migrations.

Quiet when there is nothing to do (`make run` calls it on every start): it says only what it created or
migrated. Exit codes: 0 ready; 2 bad settings; 3 no server answers; 4 the server refused the configured
user; 5 the server answered with another error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiomysql
import pymysql

from wxlogin.config import ConfigError, MySQLSettings, load_settings
from wxlogin.store.db import Database
from wxlogin.store.migrations import create_database, migrate
from wxlogin.store.rows import fetchone

ER_ACCESS_DENIED = 1045


async def probe(settings: MySQLSettings) -> int:
    """Return 0 if the server accepts the configured user, 3 if nothing answers, 4 if access is denied."""
    try:
        conn = await asyncio.wait_for(aiomysql.connect(**Database(settings).connect_kwargs(with_database=False)), 10)
    except pymysql.err.OperationalError as exc:
        return 4 if exc.args and exc.args[0] == ER_ACCESS_DENIED else 3
    except pymysql.err.MySQLError as exc:
        print(f"wxlogin: the server answered with an error: {exc}", file=sys.stderr)
        return 5
    except (TimeoutError, OSError):
        return 3
    conn.close()
    return 0


async def database_exists(settings: MySQLSettings) -> bool:
    """Ask first: CREATE DATABASE IF NOT EXISTS on an existing database leaves a note that aiomysql prints
    as a Python warning ("Can't create database ...; database exists") on every start."""
    conn = await aiomysql.connect(**Database(settings).connect_kwargs(with_database=False))
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                              (settings.database,))
            return await cur.fetchone() is not None
    finally:
        conn.close()


async def prepare(settings: MySQLSettings) -> None:
    where = f"{settings.database!r} on {settings.host}:{settings.port}"
    if not await database_exists(settings):
        await create_database(settings)
        print(f"wxlogin: created database {where}")
    applied = await migrate(settings)
    if applied:
        print(f"wxlogin: database {where} migrated to version {applied[-1]}")


async def seed_account(settings: MySQLSettings, unionid: str, nickname: str) -> tuple[int, bool]:
    """The account carrying ``unionid``, created (with the next id) when there is none: the sandbox's operator.

    The person's first sign-in then finds the account by its unionid, on any channel. Returns (its id, whether it
    was created now). Idempotent, also when several processes start at once (``users.unionid`` is unique).
    """
    conn = await aiomysql.connect(**Database(settings).connect_kwargs(with_database=True))
    try:
        async with conn.cursor() as cur:
            created = await cur.execute(
                "INSERT INTO users (unionid, nickname, created_at) SELECT %s, %s, UTC_TIMESTAMP(3) FROM DUAL "
                "WHERE NOT EXISTS (SELECT 1 FROM users WHERE unionid = %s)", (unionid, nickname, unionid))
            await cur.execute("SELECT id FROM users WHERE unionid = %s", (unionid,))
            row = await fetchone(cur)
            if row is None:  # deleted in between by the deletion job: nothing to name
                raise pymysql.err.OperationalError(0, "the seeded account vanished")
            return int(row["id"]), bool(created)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="settings.toml")
    parser.add_argument("--check", action="store_true", help="only check that the server answers")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config).mysql
    except ConfigError as exc:
        print(f"wxlogin: configuration error: {exc}", file=sys.stderr)
        return 2
    status = asyncio.run(probe(settings))
    if status or args.check:
        return status
    asyncio.run(prepare(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
