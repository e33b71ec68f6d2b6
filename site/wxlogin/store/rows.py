"""Rows by column name: a fetched row as a dict keyed by its column names (or their ``AS`` aliases).

Reading ``row[9]`` ties the code to the order of a column list written elsewhere; adding a column
shifts every index after it without an error. By name, a missing or renamed column is a KeyError.
The names come from the cursor's ``description`` once per result, so a row costs one ``dict(zip())``:
about 2 µs for a user's row, against 1.6 ms of CPU for a whole login (bench/README.md).
"""

from __future__ import annotations

from typing import Any

import aiomysql

Row = dict[str, Any]


def column_names(cur: aiomysql.Cursor) -> list[str]:
    """The names of the last result's columns, in order."""
    return [column[0] for column in cur.description]


def _duplicates(names: list[str]) -> ValueError:
    # e.g. a JOIN selecting u.id and lm.id: a dict would keep one and drop the other, so alias one.
    return ValueError(f"duplicate column names in one result: {names}")


async def fetchone(cur: aiomysql.Cursor) -> Row | None:
    """The next row by column name, or None when there is none."""
    row = await cur.fetchone()
    if row is None:
        return None
    names = column_names(cur)
    named = dict(zip(names, row, strict=False))
    if len(named) != len(row):  # cheaper than checking the names first; this runs on every page view
        raise _duplicates(names)
    return named


async def fetchall(cur: aiomysql.Cursor) -> list[Row]:
    """Every remaining row by column name."""
    rows = await cur.fetchall()
    if not rows:
        return []
    names = column_names(cur)
    if len(set(names)) != len(names):
        raise _duplicates(names)
    return [dict(zip(names, row, strict=False)) for row in rows]
