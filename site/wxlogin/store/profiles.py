"""Profile fill-in: nicknames a person typed, avatars they uploaded, and the WeChat checks still pending.

Avatars are content-addressed (``avatars.sha256`` = SHA-256 of the re-encoded JPEG) and live in MySQL so
that every process and machine serves them. An avatar becomes a user's ``avatar_url`` only when WeChat's
check says ``pass``: ``avatar_checks`` maps the check's ``trace_id`` to (user, avatar) until then. A user's
newest check wins; a verdict for an older one changes nothing (its row is deleted with the newer verdict).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import aiomysql

from wxlogin.models import User
from wxlogin.store.db import Database
from wxlogin.store.rows import fetchone
from wxlogin.store.users import USER_COLUMNS, user_from_row

logger = logging.getLogger(__name__)


class AvatarStatus(StrEnum):
    PENDING = "pending"  # WeChat has not answered: served only to its fetcher (fetch_key)
    PASS = "pass"  # served to everyone, cached for a year
    REVIEW = "review"  # kept for operators, not served


@dataclass(frozen=True)
class StoredAvatar:
    image: bytes
    status: AvatarStatus
    fetch_key: str


@dataclass(frozen=True)
class CheckOutcome:
    """What a verdict did: the user it was for (None: unknown or already handled trace), whether it was that
    user's newest check, and whether the image was deleted."""

    user_id: int | None
    newest: bool = False
    deleted: bool = False


class ProfileStore:
    """SQL for nicknames typed by the person, the ``avatars`` table and ``avatar_checks``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def miniprogram_openid(self, user_id: int, appid: str) -> str | None:
        """The user's openid under the mini-program ``appid`` (the most recently used), if they have one."""

        async def work(cur: aiomysql.Cursor) -> str | None:
            await cur.execute(
                "SELECT openid FROM user_login_methods WHERE user_id = %s AND appid = %s "
                "ORDER BY last_login_at DESC LIMIT 1", (user_id, appid))
            row = await fetchone(cur)
            return str(row["openid"]) if row else None

        return await self.db.run(work)

    async def set_nickname(self, user_id: int, nickname: str, placeholder: bool, review: bool) -> User | None:
        """Store a nickname the person typed; a placeholder never replaces a real nickname. Returns the user."""

        async def work(cur: aiomysql.Cursor) -> User | None:
            await cur.execute(f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = %s FOR UPDATE", (user_id,))
            row = await fetchone(cur)
            if row is None:
                return None
            user = user_from_row(row)
            if placeholder and user.nickname and not user.profile_is_placeholder:
                return user  # the placeholder rule of store/users.py merged_profile
            if placeholder:
                # The flag covers the avatar too: with an avatar of the person's own it stays as it is, so
                # WeChat's grey one can never replace that avatar on a later anonymous login.
                flag = user.profile_is_placeholder or not user.avatar_url
                await cur.execute(
                    "UPDATE users SET nickname = %s, profile_is_placeholder = %s, nickname_review = 0 WHERE id = %s",
                    (nickname, int(flag), user_id))
            else:
                await cur.execute(
                    "UPDATE users SET nickname = %s, profile_is_placeholder = 0, nickname_review = %s WHERE id = %s",
                    (nickname, int(review), user_id))
            await cur.execute(f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = %s", (user_id,))
            updated = await fetchone(cur)
            return user_from_row(updated) if updated else None

        return await self.db.transaction(work)

    # --- avatars -------------------------------------------------------------------------------------

    async def save_avatar(self, sha256: str, image: bytes, fetch_key: str) -> tuple[str, AvatarStatus]:
        """Keep a re-encoded avatar (pending unless these bytes are known already).

        Returns its fetch key and status: re-encoding is deterministic, so the same picture uploaded again
        finds the row WeChat already judged (passed, or waiting for an operator's review).
        """

        async def work(cur: aiomysql.Cursor) -> tuple[str, AvatarStatus]:
            await cur.execute(
                "INSERT INTO avatars (sha256, image, status, fetch_key, created_at) "
                "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE sha256 = sha256",
                (sha256, image, AvatarStatus.PENDING, fetch_key))
            await cur.execute("SELECT fetch_key, status FROM avatars WHERE sha256 = %s", (sha256,))
            row = await fetchone(cur)
            if row is None:
                return fetch_key, AvatarStatus.PENDING
            return str(row["fetch_key"]), AvatarStatus(row["status"])

        return await self.db.transaction(work)

    async def show_avatar(self, user_id: int, url: str) -> User | None:
        """Make an image WeChat already passed this person's avatar; returns the user."""

        async def work(cur: aiomysql.Cursor) -> User | None:
            await _show_avatar(cur, user_id, url)
            await cur.execute(f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = %s", (user_id,))
            row = await fetchone(cur)
            return user_from_row(row) if row else None

        return await self.db.transaction(work)

    async def avatar(self, sha256: str) -> StoredAvatar | None:
        async def work(cur: aiomysql.Cursor) -> StoredAvatar | None:
            await cur.execute("SELECT image, status, fetch_key FROM avatars WHERE sha256 = %s", (sha256,))
            row = await fetchone(cur)
            if row is None:
                return None
            return StoredAvatar(image=bytes(row["image"]), status=AvatarStatus(row["status"]),
                                fetch_key=str(row["fetch_key"]))

        return await self.db.run(work)

    async def record_check(self, trace_id: str, user_id: int, sha256: str) -> None:
        """Remember which user and avatar a media check is for, until its verdict arrives."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute(
                "INSERT INTO avatar_checks (trace_id, user_id, sha256, created_at) "
                "VALUES (%s, %s, %s, UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE trace_id = trace_id",
                (trace_id, user_id, sha256))

        await self.db.run(work)

    async def complete_check(self, trace_id: str, verdict: str, avatar_url: Callable[[str], str]) -> CheckOutcome:
        """Apply WeChat's verdict on one check, once (the row goes; a repeat finds nothing).

        ``pass``: the image is served, and becomes the user's avatar if this was their newest check.
        ``review``: kept, not served, the user flagged for operators (``users.avatar_review``).
        ``risky`` or anything else (a failed check): the image is deleted unless someone already shows it.
        ``avatar_url`` turns the image's SHA-256 into the URL users.avatar_url takes.
        """

        async def work(cur: aiomysql.Cursor) -> CheckOutcome:
            await cur.execute("SELECT id, user_id, sha256 FROM avatar_checks WHERE trace_id = %s FOR UPDATE",
                              (trace_id,))
            row = await fetchone(cur)
            if row is None:
                return CheckOutcome(user_id=None)
            check_id, user_id, sha = int(row["id"]), int(row["user_id"]), str(row["sha256"])
            await cur.execute("SELECT 1 FROM avatar_checks WHERE user_id = %s AND id > %s LIMIT 1", (user_id, check_id))
            newest = await fetchone(cur) is None
            # This verdict settles this check and every older one of the user (superseded by this upload).
            await cur.execute("DELETE FROM avatar_checks WHERE user_id = %s AND id <= %s", (user_id, check_id))
            deleted = False
            if verdict == AvatarStatus.PASS:
                await cur.execute("UPDATE avatars SET status = %s WHERE sha256 = %s", (AvatarStatus.PASS, sha))
                if newest:
                    await _show_avatar(cur, user_id, avatar_url(sha))
            elif verdict == AvatarStatus.REVIEW:
                await cur.execute("UPDATE avatars SET status = %s WHERE sha256 = %s AND status = %s",
                                  (AvatarStatus.REVIEW, sha, AvatarStatus.PENDING))
                if newest:
                    await cur.execute("UPDATE users SET avatar_review = %s WHERE id = %s", (sha, user_id))
            else:
                # Not for an image another person's check passed (the same bytes): that one is shown already.
                await cur.execute("SELECT 1 FROM avatar_checks WHERE sha256 = %s LIMIT 1", (sha,))
                others_pending = await fetchone(cur) is not None
                if not others_pending:
                    # Only a pending image: one kept for an operator's review stays until they decide.
                    deleted = bool(await cur.execute(
                        "DELETE FROM avatars WHERE sha256 = %s AND status = %s", (sha, AvatarStatus.PENDING)))
            return CheckOutcome(user_id=user_id, newest=newest, deleted=deleted)

        return await self.db.transaction(work)

    async def purge_stale(self, batch: int) -> int:
        """Checks WeChat never answered (a day; it answers within 30 minutes), then pending avatars no check
        waits for: up to ``batch`` rows of each; returns rows removed."""

        async def work(cur: aiomysql.Cursor) -> int:
            checks = int(await cur.execute(
                "DELETE FROM avatar_checks WHERE created_at < UTC_TIMESTAMP(3) - INTERVAL 1 DAY LIMIT %s", (batch,)))
            images = int(await cur.execute(
                "DELETE FROM avatars WHERE status = %s AND created_at < UTC_TIMESTAMP(3) - INTERVAL 1 DAY "
                "AND NOT EXISTS (SELECT 1 FROM avatar_checks c WHERE c.sha256 = avatars.sha256) LIMIT %s",
                (AvatarStatus.PENDING, batch)))
            return max(checks, images)

        return await self.db.run(work)


async def _show_avatar(cur: aiomysql.Cursor, user_id: int, url: str) -> None:
    await cur.execute("UPDATE users SET avatar_url = %s, profile_is_placeholder = 0, avatar_review = NULL "
                      "WHERE id = %s", (url, user_id))
