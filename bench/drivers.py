"""`python bench/drivers.py`: client CPU per MySQL statement, aiomysql against asyncmy, asyncio's loop against uvloop.

One connection, statements in a loop on a private MariaDB (tests/harness/mariadb.py), CPU from
`time.process_time()` (this process only: the driver's own cost, not MySQL's). asyncmy and uvloop are not
dependencies of the product; install them into the venv to run this (`pip install asyncmy uvloop`).
Figures and what they mean: bench/README.md, "What would meet each target".
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.mariadb import PrivateMariaDB

N = 1500
ROW = ("INSERT INTO d.t VALUES (%s, 'oabcdefghijklmnopqrstuvwxyz012', 'uabcdefghijk', 'nick', NOW(3), 12345, "
       "'https://thirdwx.qlogo.cn/x/132', 0, 1)")
STATEMENTS: list[tuple[str, str, tuple[Any, ...] | None, bool]] = [
    ("SELECT 1", "SELECT 1", None, True),
    ("SELECT 9 columns by primary key", "SELECT id, a, b, c, d, e, f, g, h FROM t WHERE id = %s", (5,), True),
    ("UPDATE by primary key", "UPDATE t SET g = g + 1 WHERE id = %s", (7,), False),
]


async def measure(driver: Any, port: int) -> dict[str, float]:
    conn = await driver.connect(host="127.0.0.1", port=port, user="root", password="", db="d", autocommit=True)
    out: dict[str, float] = {}
    for label, sql, args, fetch in STATEMENTS:
        async with conn.cursor() as cur:
            for _ in range(100):  # warm
                await cur.execute(sql, args)
                if fetch:
                    await cur.fetchall()
            started = time.process_time()
            for _ in range(N):
                await cur.execute(sql, args)
                if fetch:
                    await cur.fetchall()
            out[label] = (time.process_time() - started) / N * 1e6
    conn.close()
    return out


async def setup(db: PrivateMariaDB) -> None:
    await db.query("CREATE DATABASE d")
    await db.query("CREATE TABLE d.t (id INT PRIMARY KEY, a VARCHAR(64), b VARCHAR(64), c VARCHAR(64), "
                   "d DATETIME(3), e BIGINT, f VARCHAR(255), g INT, h TINYINT)")
    for i in range(1, 20):
        await db.query(ROW, (i,))


def main() -> int:
    try:
        uvloop = importlib.import_module("uvloop")
        drivers = [importlib.import_module("aiomysql"), importlib.import_module("asyncmy")]
    except ImportError as exc:
        print(f"{exc.name} is not installed: pip install asyncmy uvloop")
        return 1
    with tempfile.TemporaryDirectory(prefix="wxdrv-") as tmp:
        db = PrivateMariaDB(Path(tmp))
        asyncio.run(db.start(60))
        try:
            asyncio.run(setup(db))
            print("| loop | driver | statement | client CPU µs |\n|---|---|---|---:|")
            for _ in range(2):
                for loop, run in (("asyncio", asyncio.run), ("uvloop", uvloop.run)):
                    for driver in drivers:
                        for label, micros in run(measure(driver, db.port)).items():
                            print(f"| {loop} | {driver.__name__} | {label} | {micros:.1f} |", flush=True)
        finally:
            asyncio.run(db.stop())
    return 0


if __name__ == "__main__":
    sys.exit(main())
