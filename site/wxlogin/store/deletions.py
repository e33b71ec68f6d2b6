"""Closing accounts (注销): schedule, cancel, hasten, the job's lock, deleting one person, and the data export.

A closed account keeps its row, marked with ``users.deletion_scheduled_at``, until the job deletes it.
Deleting a person is one transaction over every table that holds something of theirs (the list below is
the whole schema, table by table), so a crash or a lost connection never leaves half a person behind, and
running it again finds either the whole person or nothing. Audit rows stay, anonymised: a count.

Every table, and what happens to its rows when a person is deleted:

- users: deleted. user_login_methods (openids, unionids, sealed WeChat tokens, session keys): deleted.
- user_phones: deleted. phone_codes (hashes of getPhoneNumber codes, by user): deleted.
- avatar_checks: deleted; avatars: the person's images (shown, under review, or waiting for a check) are
  deleted unless another account shows or checks the same image (content-addressed: one row per image).
- pending_merges (either side), unlinked_identities (this account's), login_scenes (named this account),
  wxa_scenes (owned by it), oauth_callbacks (signed this account in): deleted.
- login_events: kept as a count: user_id NULL, ip and user agent blanked, WeChat's errcode and rid NULL (a rid
  is WeChat's id of one request, which WeChat can trace to the person); channel, outcome and time stay.
- operator_actions naming the account as their target: kept, their ``detail`` blanked (an operator's typed
  reason, an unlinked method's appid); operator, action, time and ``target_user_id`` stay, so operators stay
  accountable for what they did. The bare id identifies nobody once the account is gone, and is never given
  to another account (AUTO_INCREMENT, persisted by InnoDB). Rows where the person was the operator stay whole:
  they are about other accounts.
- rate_limits: the buckets keyed by this account's id (store/ratelimits.py ACCOUNT_BUCKETS: phone, profile,
  session check) are deleted, by the primary key; the others are keyed by IP or session id and hold nothing
  that leads to the person.
- unlinked_identities of *other* accounts that name one of this person's openids: kept. They record the
  other account's owner's decision ("this WeChat is no longer mine"), and dropping them would let the
  unionid re-attach that WeChat to the other account on its next login.
- revoked_sessions (random session ids), wechat_pushes (hashes), app_tokens (the site's): nothing personal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiomysql
import pymysql

from wxlogin.errors import DatabaseUnavailable
from wxlogin.store.db import Database
from wxlogin.store.ratelimits import ACCOUNT_BUCKETS
from wxlogin.store.rows import fetchall, fetchone

logger = logging.getLogger(__name__)

# An avatar the site serves: users.avatar_url ends with /avatars/<sha256>.jpg (handlers/avatars.py).
_AVATAR_SHA = re.compile(r"/avatars/([0-9a-f]{64})\.jpg$")
EXPORT_EVENTS_LIMIT = 10_000  # the audit trail's retention bounds it anyway; this bounds one export's memory


@dataclass(frozen=True)
class PersonData:
    """Everything held about one person, as rows of plain values, without any secret column."""

    user: dict[str, Any]
    login_methods: list[dict[str, Any]] = field(default_factory=list)
    phone: dict[str, Any] | None = None
    login_events: list[dict[str, Any]] = field(default_factory=list)
    unlinked_identities: list[dict[str, Any]] = field(default_factory=list)


class DeletionStore:
    """SQL for closing accounts and for the deletion job."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def schedule(self, user_id: int, grace_days: int) -> datetime | None:
        """Mark the account as closing and end every session and token of it, in one statement.

        Returns when it will be deleted (naive UTC), or None if there is no such account. Closing again
        keeps the first date: a second request must not push the deletion further out.
        """

        async def work(cur: aiomysql.Cursor) -> datetime | None:
            await cur.execute(
                "UPDATE users SET deletion_scheduled_at = COALESCE(deletion_scheduled_at, "
                "UTC_TIMESTAMP(3) + INTERVAL %s DAY), session_version = session_version + 1 WHERE id = %s",
                (grace_days, user_id),
            )
            await cur.execute("SELECT deletion_scheduled_at FROM users WHERE id = %s", (user_id,))
            row = await fetchone(cur)
            return row["deletion_scheduled_at"] if row else None

        return await self.db.transaction(work)

    async def cancel(self, user_id: int) -> bool:
        """Keep the account after all; True if a deletion was pending."""

        async def work(cur: aiomysql.Cursor) -> bool:
            return bool(await cur.execute(
                "UPDATE users SET deletion_scheduled_at = NULL WHERE id = %s AND deletion_scheduled_at IS NOT NULL",
                (user_id,),
            ))

        return await self.db.run(work)

    async def hasten(self, user_id: int) -> bool:
        """Make a pending deletion due now (the next run of the job deletes it); False if none is pending."""

        async def work(cur: aiomysql.Cursor) -> bool:
            await cur.execute(
                "UPDATE users SET deletion_scheduled_at = LEAST(deletion_scheduled_at, UTC_TIMESTAMP(3)) "
                "WHERE id = %s AND deletion_scheduled_at IS NOT NULL",
                (user_id,),
            )
            await cur.execute("SELECT deletion_scheduled_at FROM users WHERE id = %s", (user_id,))
            row = await fetchone(cur)
            return row is not None and row["deletion_scheduled_at"] is not None

        return await self.db.run(work)

    async def scheduled_at(self, user_id: int) -> datetime | None:
        """When the account is due to be deleted (naive UTC), or None."""

        async def work(cur: aiomysql.Cursor) -> datetime | None:
            await cur.execute("SELECT deletion_scheduled_at FROM users WHERE id = %s", (user_id,))
            row = await fetchone(cur)
            return row["deletion_scheduled_at"] if row else None

        return await self.db.run(work)

    async def count_pending(self) -> int:
        """How many accounts are closing (due or in their grace period): the metrics' gauge."""

        async def work(cur: aiomysql.Cursor) -> int:
            await cur.execute("SELECT COUNT(*) AS n FROM users WHERE deletion_scheduled_at IS NOT NULL")
            row = await fetchone(cur)
            return int(row["n"]) if row else 0

        return await self.db.run(work)

    async def due(self, limit: int) -> list[int]:
        """Ids of accounts whose grace period is over, oldest first."""

        async def work(cur: aiomysql.Cursor) -> list[int]:
            await cur.execute(
                "SELECT id FROM users WHERE deletion_scheduled_at <= UTC_TIMESTAMP(3) "
                "ORDER BY deletion_scheduled_at, id LIMIT %s",
                (limit,),
            )
            return [int(r["id"]) for r in await fetchall(cur)]

        return await self.db.run(work)

    async def delete_person(self, user_id: int) -> bool:
        """Delete the person and everything of theirs in one transaction; False if not (or no longer) due.

        The account is locked and checked again first: a deletion cancelled a moment ago, or a person
        another run deleted already, is left alone.
        """

        async def work(cur: aiomysql.Cursor) -> bool:
            return await _delete_person(cur, user_id)

        return await self.db.transaction(work)

    @asynccontextmanager
    async def job_lock(self) -> AsyncIterator[bool]:
        """Hold the deletion job's MySQL named lock while the block runs; yields False if another holds it.

        A named lock belongs to a connection, so it gets one of its own (not the pool's: a pooled connection
        handed back while it holds the lock would carry it into someone's request). ``GET_LOCK(..., 0)``
        does not wait: a second process skips this run. If the connection dies, MySQL releases the lock.
        The name carries the database's, so sites sharing a MySQL server do not block each other.
        """
        name = f"wxlogin.deletion.{self.db.settings.database}"[:64]
        try:
            conn = await aiomysql.connect(**self.db.connect_kwargs(with_database=True))
        except (OSError, pymysql.err.MySQLError) as exc:
            raise DatabaseUnavailable(f"deletion lock: {type(exc).__name__}") from None
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT GET_LOCK(%s, 0) AS locked", (name,))
                row = await fetchone(cur)
            held = row is not None and row["locked"] == 1
            try:
                yield held
            finally:
                if held:
                    async with conn.cursor() as cur:
                        await cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
        finally:
            conn.close()

    async def export(self, user_id: int) -> PersonData | None:
        """Everything held about the person, without a secret (no token, no session key); None if no account."""

        async def work(cur: aiomysql.Cursor) -> PersonData | None:
            await cur.execute(
                "SELECT id, unionid, nickname, avatar_url, profile_is_placeholder, nickname_review, created_at, "
                "last_login_at, deletion_scheduled_at FROM users WHERE id = %s", (user_id,))
            user = await fetchone(cur)
            if user is None:
                return None
            # Named columns only: access_token_enc, refresh_token_enc and session_key_enc are never read here.
            await cur.execute(
                "SELECT login_method, appid, openid, unionid, scope, created_at, last_login_at "
                "FROM user_login_methods WHERE user_id = %s ORDER BY id", (user_id,))
            methods = await fetchall(cur)
            await cur.execute("SELECT phone, country_code, bound_at FROM user_phones WHERE user_id = %s", (user_id,))
            phone = await fetchone(cur)
            await cur.execute(
                "SELECT created_at, login_method, outcome, ip, user_agent FROM login_events WHERE user_id = %s "
                "ORDER BY created_at DESC, id DESC LIMIT %s", (user_id, EXPORT_EVENTS_LIMIT))
            events = await fetchall(cur)
            await cur.execute("SELECT appid, openid, unlinked_at FROM unlinked_identities WHERE user_id = %s "
                              "ORDER BY unlinked_at", (user_id,))
            unlinked = await fetchall(cur)
            return PersonData(user=dict(user), login_methods=[dict(r) for r in methods],
                              phone=dict(phone) if phone else None, login_events=[dict(r) for r in events],
                              unlinked_identities=[dict(r) for r in unlinked])

        return await self.db.run(work)


# By the primary key (bucket, subject): the account's own buckets only (another bucket's subject "42" is an IP's or
# a session's, never this account's, and a subject-only match would scan the whole table).
DELETE_RATE_LIMITS = "DELETE FROM rate_limits WHERE bucket IN %s AND subject = %s"
# The rows of a person that simply go, each statement keyed by the account id only (once per %s).
_DELETE_STATEMENTS = (
    "DELETE FROM avatar_checks WHERE user_id = %s",
    "DELETE FROM phone_codes WHERE user_id = %s",
    "DELETE FROM user_phones WHERE user_id = %s",
    "DELETE FROM pending_merges WHERE into_user_id = %s OR from_user_id = %s",
    "DELETE FROM unlinked_identities WHERE user_id = %s",
    "DELETE FROM login_scenes WHERE user_id = %s",
    "DELETE FROM wxa_scenes WHERE owner_id = %s",
    "DELETE FROM oauth_callbacks WHERE user_id = %s",
    "DELETE FROM user_login_methods WHERE user_id = %s",
)


async def _delete_person(cur: aiomysql.Cursor, user_id: int) -> bool:
    await cur.execute(
        "SELECT id, avatar_url, avatar_review FROM users WHERE id = %s AND deletion_scheduled_at <= UTC_TIMESTAMP(3) "
        "FOR UPDATE", (user_id,))
    user = await fetchone(cur)
    if user is None:
        return False
    # The person's images: shown, held for review, or waiting for WeChat's check.
    shas: set[str] = set()
    shown = _AVATAR_SHA.search(user["avatar_url"] or "")
    if shown:
        shas.add(shown.group(1))
    if user["avatar_review"]:
        shas.add(user["avatar_review"])
    await cur.execute("SELECT sha256 FROM avatar_checks WHERE user_id = %s", (user_id,))
    shas.update(r["sha256"] for r in await fetchall(cur))

    await cur.execute("UPDATE login_events SET user_id = NULL, ip = '', user_agent = '', wechat_errcode = NULL, "
                      "wechat_rid = NULL WHERE user_id = %s", (user_id,))
    await cur.execute("UPDATE operator_actions SET detail = '' WHERE target_user_id = %s", (user_id,))
    for statement in _DELETE_STATEMENTS:
        await cur.execute(statement, (user_id,) * statement.count("%s"))
    # Rate-limit buckets keyed by the account id (services/ratelimit.py callers pass str(user.id)).
    await cur.execute(DELETE_RATE_LIMITS, (ACCOUNT_BUCKETS, str(user_id).encode("ascii")))
    for sha in sorted(shas):
        # Content-addressed: the same image may be another account's too; then it stays.
        await cur.execute(
            "DELETE FROM avatars WHERE sha256 = %s AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id <> %s AND "
            "(u.avatar_review = %s OR u.avatar_url LIKE %s)) AND NOT EXISTS "
            "(SELECT 1 FROM avatar_checks c WHERE c.sha256 = %s)",
            (sha, user_id, sha, f"%/avatars/{sha}.jpg", sha),
        )
    deleted = await cur.execute("DELETE FROM users WHERE id = %s", (user_id,))
    logger.info("deleted user %d and everything of theirs; audit rows anonymised", user_id)
    return bool(deleted)
