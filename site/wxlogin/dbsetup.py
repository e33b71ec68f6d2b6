"""`python -m wxlogin.dbsetup`: check that MySQL answers, create the database, apply migrations.

Exit codes: 0 ready; 2 bad settings; 3 no server answers; 4 the server refused the configured user;
5 the server answered with another error.
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
    except (OSError, asyncio.TimeoutError):
        return 3
    conn.close()
    return 0


async def prepare(settings: MySQLSettings) -> None:
    await create_database(settings)
    applied = await migrate(settings)
    print(f"wxlogin: database {settings.database!r} on {settings.host}:{settings.port} is ready"
          + (f" (migrated to version {applied[-1]})" if applied else ""))


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
