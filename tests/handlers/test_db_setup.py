"""`python -m wxlogin.store.setup`, which `make run` and `make test` call on every start, on the real MariaDB.

It says what it created or migrated, and nothing at all when the database is already there and current:
aiomysql used to print "Warning: Can't create database ...; database exists" on every start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiomysql
import pytest

from wxlogin.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
# Its own database (this test creates and drops it), named after the checkout's test database.
DATABASE = os.environ.get("WXLOGIN_TEST_DATABASE", "wxlogin_test") + "_setup"


async def drop_database() -> None:
    mysql = load_settings(ROOT / "settings.toml", env={}).mysql
    conn = await aiomysql.connect(host=mysql.host, port=mysql.port, user=mysql.user,
                                  password=mysql.password.value, autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION sql_notes = 0")
            await cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    finally:
        conn.close()


def run_setup() -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WXLOGIN_")}
    env.update(PYTHONPATH=str(ROOT / "site"), WXLOGIN_MYSQL_DATABASE=DATABASE)
    command = [sys.executable, "-m", "wxlogin.store.setup", "--config", str(ROOT / "settings.toml")]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture
async def fresh_database():
    await drop_database()
    yield
    await drop_database()


async def test_setup_says_what_it_did_then_starts_quietly(fresh_database):
    first, again = run_setup(), run_setup()
    assert (again.returncode, again.stdout, again.stderr) == (0, "", ""), \
        "a start against an existing, current database is silent"
    assert first.returncode == 0 and first.stderr == "", first.stderr
    assert f"created database '{DATABASE}'" in first.stdout and "migrated to version" in first.stdout


async def test_a_half_applied_migration_that_added_columns_runs_again(fresh_database):
    """Migration 7 adds columns to users; MySQL has no ADD COLUMN IF NOT EXISTS, so "duplicate column" is done."""
    assert run_setup().returncode == 0
    mysql = load_settings(ROOT / "settings.toml", env={}).mysql
    conn = await aiomysql.connect(host=mysql.host, port=mysql.port, user=mysql.user, db=DATABASE,
                                  password=mysql.password.value, autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute("DELETE FROM schema_migrations WHERE version = 7")  # as if it stopped before its record
    finally:
        conn.close()

    again = run_setup()

    assert again.returncode == 0, again.stderr
    assert "migrated to version 7" in again.stdout
