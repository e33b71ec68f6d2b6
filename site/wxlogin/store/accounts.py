"""Changing who owns what, only on a signed-in person's request: link, unlink, merge, refresh a profile.

Login never moves a login method between users (users.py). These statements do, and each runs in
one transaction, so an account is never left half-merged or without a way to log in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import aiomysql

from wxlogin.errors import LastLoginMethod, LinkConflict, NotFound
from wxlogin.models import Channel, EncryptedGrant, WeChatIdentity, WeChatProfile
from wxlogin.store.db import Database
from wxlogin.store.rows import fetchall, fetchone
from wxlogin.store.users import USER_COLUMNS, insert_method, merged_profile, touch_method, user_from_row

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredGrant:
    """A login method's encrypted WeChat tokens, as kept."""

    method_id: int
    channel: Channel
    appid: str
    openid: str
    scope: str
    access_token_enc: bytes | None
    refresh_token_enc: bytes | None
    access_token_expires_at: datetime | None


class AccountStore:
    """SQL for account changes the person asks for."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def link(self, user_id: int, identity: WeChatIdentity, grant: EncryptedGrant | None) -> bool:
        """Attach a WeChat identity to this user; False if it already was. Raises LinkConflict."""

        async def work(cur: aiomysql.Cursor) -> bool:
            await cur.execute(
                "SELECT id, user_id FROM user_login_methods WHERE appid = %s AND openid = %s FOR UPDATE",
                (identity.appid, identity.openid),
            )
            row = await fetchone(cur)
            if row:
                if int(row["user_id"]) != user_id:
                    raise LinkConflict(int(row["user_id"]))
                if grant is not None:  # linked already: a fresh authorisation still renews the tokens
                    await touch_method(cur, int(row["id"]), grant)
                return False
            if identity.unionid:
                await cur.execute("SELECT id FROM users WHERE unionid = %s FOR UPDATE", (identity.unionid,))
                owner = await fetchone(cur)
                if owner and int(owner["id"]) != user_id:
                    raise LinkConflict(int(owner["id"]))
                await cur.execute("UPDATE users SET unionid = %s WHERE id = %s AND unionid IS NULL",
                                  (identity.unionid, user_id))
            await insert_method(cur, user_id, identity, grant)
            return True

        return await self.db.transaction(work)

    async def unlink(self, user_id: int, method_id: int) -> None:
        """Remove one login method, never the last; forget the unionid if no method carries it any more."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute("SELECT id FROM user_login_methods WHERE user_id = %s FOR UPDATE", (user_id,))
            ids = {int(r["id"]) for r in await fetchall(cur)}
            if method_id not in ids:
                raise NotFound("login method")
            if len(ids) <= 1:
                raise LastLoginMethod()
            await cur.execute("DELETE FROM user_login_methods WHERE id = %s AND user_id = %s", (method_id, user_id))
            # Otherwise the next login with that unionid would quietly re-attach what was just unlinked.
            await cur.execute(
                "UPDATE users u SET u.unionid = NULL WHERE u.id = %s AND NOT EXISTS "
                "(SELECT 1 FROM user_login_methods m WHERE m.user_id = u.id AND m.unionid = u.unionid)",
                (user_id,),
            )

        await self.db.transaction(work)

    async def merge(self, into_user_id: int, from_user_id: int) -> int:
        """Move every login method and the login history of one account into another; delete the empty one.

        Returns the number of login methods moved.
        """

        async def work(cur: aiomysql.Cursor) -> int:
            await cur.execute(
                f"SELECT {USER_COLUMNS} FROM users u WHERE u.id IN (%s, %s) ORDER BY u.id FOR UPDATE",
                (into_user_id, from_user_id),
            )
            users = {u.id: u for u in map(user_from_row, await fetchall(cur))}
            if len(users) != 2:
                raise NotFound("account")
            source, target = users[from_user_id], users[into_user_id]
            moved = await cur.execute("UPDATE user_login_methods SET user_id = %s WHERE user_id = %s",
                                      (into_user_id, from_user_id))
            await cur.execute("UPDATE login_events SET user_id = %s WHERE user_id = %s", (into_user_id, from_user_id))
            await cur.execute("DELETE FROM users WHERE id = %s", (from_user_id,))
            if target.unionid is None and source.unionid is not None:
                await cur.execute("UPDATE users SET unionid = %s WHERE id = %s", (source.unionid, into_user_id))
            if not target.nickname or target.profile_is_placeholder:
                await cur.execute(
                    "UPDATE users SET nickname = %s, avatar_url = %s, profile_is_placeholder = %s WHERE id = %s",
                    (source.nickname, source.avatar_url, int(source.profile_is_placeholder), into_user_id),
                )
            logger.info("merged account %d into %d (%d login methods)", from_user_id, into_user_id, moved)
            return int(moved)

        return await self.db.transaction(work)

    async def conflicting_accounts(self, user_id: int) -> list[int]:
        """Other accounts that own the unionid one of this user's login methods reports."""

        async def work(cur: aiomysql.Cursor) -> list[int]:
            await cur.execute(
                "SELECT DISTINCT u.id FROM user_login_methods m JOIN users u ON u.unionid = m.unionid "
                "WHERE m.user_id = %s AND u.id <> %s ORDER BY u.id",
                (user_id, user_id),
            )
            return [int(r["id"]) for r in await fetchall(cur)]

        return await self.db.run(work)

    async def grants(self, user_id: int) -> list[StoredGrant]:
        """The user's login methods that keep WeChat tokens, most recently used first."""

        async def work(cur: aiomysql.Cursor) -> list[StoredGrant]:
            await cur.execute(
                "SELECT id, login_method, appid, openid, COALESCE(scope, '') AS scope, access_token_enc, "
                "refresh_token_enc, access_token_expires_at FROM user_login_methods "
                "WHERE user_id = %s AND access_token_enc IS NOT NULL ORDER BY last_login_at DESC, id DESC",
                (user_id,),
            )
            return [
                StoredGrant(
                    method_id=int(r["id"]), channel=Channel(r["login_method"]), appid=r["appid"], openid=r["openid"],
                    scope=r["scope"], access_token_enc=r["access_token_enc"], refresh_token_enc=r["refresh_token_enc"],
                    access_token_expires_at=r["access_token_expires_at"],
                )
                for r in await fetchall(cur)
            ]

        return await self.db.run(work)

    async def save_grant(self, method_id: int, grant: EncryptedGrant) -> None:
        """Replace a login method's tokens (after a refresh)."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute(
                "UPDATE user_login_methods SET access_token_enc = %s, "
                "refresh_token_enc = COALESCE(%s, refresh_token_enc), "
                "access_token_expires_at = UTC_TIMESTAMP(3) + INTERVAL %s SECOND WHERE id = %s",
                (grant.access_token_enc, grant.refresh_token_enc, grant.access_token_expires_in, method_id),
            )

        await self.db.run(work)

    async def update_profile(self, user_id: int, profile: WeChatProfile) -> bool:
        """Store a fresh WeChat profile unless it is a placeholder over a real one; True if it changed."""

        async def work(cur: aiomysql.Cursor) -> bool:
            await cur.execute(f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = %s FOR UPDATE", (user_id,))
            row = await fetchone(cur)
            if row is None:
                raise NotFound("account")
            user = user_from_row(row)
            values = merged_profile(user, profile)
            if values is None or values == (user.nickname, user.avatar_url, user.profile_is_placeholder):
                return False
            await cur.execute(
                "UPDATE users SET nickname = %s, avatar_url = %s, profile_is_placeholder = %s WHERE id = %s",
                (values[0], values[1], int(values[2]), user_id),
            )
            return True

        return await self.db.transaction(work)
