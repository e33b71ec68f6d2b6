"""Changing who owns what, only on a signed-in person's request: link, unlink, merge, refresh a profile.

Login never moves a login method between users (users.py). These statements do, and each runs in
one transaction, so an account is never left half-merged or without a way to log in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import aiomysql
import pymysql

from wxlogin.errors import LastLoginMethod, LinkConflict, MergeNotConfirmed, MergeRefused, NotFound
from wxlogin.models import Channel, EncryptedGrant, User, WeChatIdentity, WeChatProfile
from wxlogin.store.db import ER_NO_REFERENCED_ROW, Database, error_number
from wxlogin.store.rows import Row, fetchall, fetchone
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
            # Linked again on purpose: the record of an earlier unlink from this account is void.
            await cur.execute("DELETE FROM unlinked_identities WHERE appid = %s AND openid = %s AND user_id = %s",
                              (identity.appid, identity.openid, user_id))
            return True

        return await self.db.transaction(work)

    async def unlink(self, user_id: int, method_id: int) -> None:
        """Remove one login method (never the last), remember the identity was unlinked, end every session.

        Forgets the unionid if no method carries it any more. Bumping ``session_version`` ends the
        bearer tokens and sessions the removed method handed out (tokens carry no method id, so the
        only sound cut is all of the person's); the caller re-issues the current browser's session.
        """

        async def work(cur: aiomysql.Cursor) -> None:
            await unlink_method(cur, user_id, method_id)

        await self.db.transaction(work)

    async def merge(self, into_user_id: int, from_user_id: int) -> int:
        """Merge one account into another without the owner's proof (operators only; never from a route).

        Returns the number of login methods moved. Raises MergeRefused if either account is disabled.
        """

        async def work(cur: aiomysql.Cursor) -> int:
            target, source = await _lock_pair(cur, into_user_id, from_user_id)
            return await _move_account(cur, target, source)

        return await self.db.transaction(work)

    async def add_pending_merge(self, nonce: str, into_user_id: int, from_user_id: int) -> None:
        """Remember which merge the flow with this state nonce confirms (kept until it is confirmed)."""

        async def work(cur: aiomysql.Cursor) -> None:
            # Pending merges outlive their state by far after an hour: a few stale rows go with every new one.
            await cur.execute("DELETE FROM pending_merges WHERE created_at < UTC_TIMESTAMP(3) - INTERVAL 1 HOUR "
                              "LIMIT 100")
            try:
                await cur.execute(
                    "INSERT INTO pending_merges (nonce, into_user_id, from_user_id, created_at) "
                    "VALUES (%s, %s, %s, UTC_TIMESTAMP(3))",
                    (nonce, into_user_id, from_user_id),
                )
            except pymysql.err.IntegrityError as exc:
                if error_number(exc) != ER_NO_REFERENCED_ROW:
                    raise
                raise NotFound("account") from None  # one of the accounts was deleted a moment ago

        await self.db.run(work)

    async def pending_merge(self, nonce: str) -> tuple[int, int] | None:
        """(into, from) of the merge waiting for this flow's confirmation, or None."""

        async def work(cur: aiomysql.Cursor) -> tuple[int, int] | None:
            await cur.execute("SELECT into_user_id, from_user_id FROM pending_merges WHERE nonce = %s", (nonce,))
            row = await fetchone(cur)
            return (int(row["into_user_id"]), int(row["from_user_id"])) if row else None

        return await self.db.run(work)

    async def merge_confirmed(self, nonce: str, into_user_id: int, proof: WeChatIdentity) -> int:
        """Carry out the pending merge of this flow, if ``proof`` (a fresh WeChat confirmation) is the source's.

        The proof holds when the confirmed (appid, openid) is one of the source account's login
        methods, or WeChat vouches for the same person through the unionid the source account owns.
        The pending merge is used up. Raises MergeNotConfirmed (nothing changes) or MergeRefused.
        """

        async def work(cur: aiomysql.Cursor) -> int:
            await cur.execute(
                "SELECT into_user_id, from_user_id FROM pending_merges WHERE nonce = %s FOR UPDATE", (nonce,)
            )
            row = await fetchone(cur)
            if row is None or int(row["into_user_id"]) != into_user_id:
                raise MergeNotConfirmed("no pending merge for this flow and person")
            from_user_id = int(row["from_user_id"])
            await cur.execute("DELETE FROM pending_merges WHERE nonce = %s", (nonce,))
            target, source = await _lock_pair(cur, into_user_id, from_user_id)
            await cur.execute(
                "SELECT 1 FROM user_login_methods WHERE appid = %s AND openid = %s AND user_id = %s",
                (proof.appid, proof.openid, from_user_id),
            )
            owns_identity = await fetchone(cur) is not None
            same_person = bool(proof.unionid) and proof.unionid == source.unionid
            if not (owns_identity or same_person):
                raise MergeNotConfirmed(f"the confirmed WeChat is not user {from_user_id}'s")
            return await _move_account(cur, target, source)

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
                "UPDATE users SET nickname = %s, avatar_url = %s, profile_is_placeholder = %s, nickname_review = 0 "
                "WHERE id = %s",
                (values[0], values[1], int(values[2]), user_id),
            )
            return True

        return await self.db.transaction(work)


async def unlink_method(cur: aiomysql.Cursor, user_id: int, method_id: int) -> Row:
    """``AccountStore.unlink``'s statements, inside the caller's transaction (an operator's unlink adds its audit
    row to the same one). Returns the removed method's row (login_method, appid); raises NotFound, LastLoginMethod."""
    await cur.execute("SELECT id, login_method, appid, openid FROM user_login_methods WHERE user_id = %s FOR UPDATE",
                      (user_id,))
    methods = {int(r["id"]): r for r in await fetchall(cur)}
    removed = methods.get(method_id)
    if removed is None:
        raise NotFound("login method")
    if len(methods) <= 1:
        raise LastLoginMethod()
    await cur.execute("DELETE FROM user_login_methods WHERE id = %s AND user_id = %s", (method_id, user_id))
    # Otherwise the next login of that identity would quietly re-attach to this account through
    # the unionid the account keeps (users.py reads this record).
    await cur.execute(
        "INSERT INTO unlinked_identities (appid, openid, user_id, unlinked_at) "
        "VALUES (%s, %s, %s, UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE unlinked_at = VALUES(unlinked_at)",
        (removed["appid"], removed["openid"], user_id),
    )
    await cur.execute(
        "UPDATE users u SET u.unionid = NULL WHERE u.id = %s AND NOT EXISTS "
        "(SELECT 1 FROM user_login_methods m WHERE m.user_id = u.id AND m.unionid = u.unionid)",
        (user_id,),
    )
    await cur.execute("UPDATE users SET session_version = session_version + 1 WHERE id = %s", (user_id,))
    logger.info("unlinked login method %d from user %d; sessions and tokens ended", method_id, user_id)
    return removed


async def _lock_pair(cur: aiomysql.Cursor, into_user_id: int, from_user_id: int) -> tuple[User, User]:
    """Lock both accounts (in id order, so two merges cannot deadlock); refuse a disabled one."""
    if into_user_id == from_user_id:
        raise NotFound("account")
    await cur.execute(
        f"SELECT {USER_COLUMNS} FROM users u WHERE u.id IN (%s, %s) ORDER BY u.id FOR UPDATE",
        (into_user_id, from_user_id),
    )
    users = {u.id: u for u in map(user_from_row, await fetchall(cur))}
    if len(users) != 2:
        raise NotFound("account")
    target, source = users[into_user_id], users[from_user_id]
    if target.disabled or source.disabled:
        # A ban must not vanish with its row, nor may a disabled account take over another one.
        raise MergeRefused(f"user {source.id if source.disabled else target.id} is disabled")
    return target, source


async def _move_account(cur: aiomysql.Cursor, target: User, source: User) -> int:
    """Move every login method and the history of ``source`` into ``target``; delete ``source``."""
    moved = await cur.execute("UPDATE user_login_methods SET user_id = %s WHERE user_id = %s", (target.id, source.id))
    await cur.execute("UPDATE login_events SET user_id = %s WHERE user_id = %s", (target.id, source.id))
    # What the source account unlinked stays unlinked from the account it now belongs to.
    await cur.execute("UPDATE IGNORE unlinked_identities SET user_id = %s WHERE user_id = %s", (target.id, source.id))
    await cur.execute(
        "DELETE x FROM unlinked_identities x JOIN user_login_methods m ON m.appid = x.appid AND m.openid = x.openid "
        "WHERE x.user_id = %s AND m.user_id = %s",
        (target.id, target.id),
    )
    # The phone number goes with the merged account's person to the account that stays, unless that one
    # has a number of its own (then the merged one's is dropped with its account): merging is the only way
    # a number moves between accounts (services/phones.py).
    await cur.execute("UPDATE IGNORE user_phones SET user_id = %s WHERE user_id = %s", (target.id, source.id))
    if not target.nickname or target.profile_is_placeholder:
        # The profile moves with its review flags: a nickname WeChat sent to review stays flagged.
        await cur.execute(
            "UPDATE users t JOIN users s ON s.id = %s SET t.nickname = s.nickname, t.avatar_url = s.avatar_url, "
            "t.profile_is_placeholder = s.profile_is_placeholder, t.nickname_review = s.nickname_review, "
            "t.avatar_review = s.avatar_review WHERE t.id = %s",
            (source.id, target.id),
        )
    await cur.execute("DELETE FROM users WHERE id = %s", (source.id,))
    if target.unionid is None and source.unionid is not None:
        await cur.execute("UPDATE users SET unionid = %s WHERE id = %s", (source.unionid, target.id))
    logger.info("merged account %d into %d (%d login methods)", source.id, target.id, moved)
    return int(moved)
