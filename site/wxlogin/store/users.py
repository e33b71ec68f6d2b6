"""Users and their login methods: login-or-register in one transaction, lookups, revocation.

Uniqueness lives in the schema (``UNIQUE(appid, openid)`` and ``UNIQUE(users.unionid)``): when two
first logins of one person race, one INSERT wins and the other fails with a duplicate key, and
``Database.transaction`` runs the loser again from the start, where it finds the winner's rows.
A login method is never moved to another user here; a unionid that points elsewhere is reported
as a conflict for the person to resolve.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import aiomysql

from wxlogin.errors import AccountDisabled, NotFound
from wxlogin.models import (
    BoundPhone,
    CallbackStatus,
    Channel,
    EncryptedGrant,
    LinkedMethod,
    LoginMethod,
    LoginResult,
    RequestContext,
    User,
    WeChatIdentity,
    WeChatProfile,
)
from wxlogin.store.db import Cursor, Database
from wxlogin.store.events import insert_event
from wxlogin.store.phones import phone_from_row
from wxlogin.store.rows import Row, fetchall, fetchone

logger = logging.getLogger(__name__)

USER_COLUMNS = (
    "u.id, u.nickname, u.avatar_url, u.profile_is_placeholder, u.unionid, u.session_version, u.disabled, "
    "u.created_at, u.last_login_at, u.deletion_scheduled_at"
)
_METHOD_COLUMN_NAMES = ("id", "user_id", "login_method", "appid", "openid", "unionid", "created_at", "last_login_at")
_METHOD_COLUMNS = ", ".join(_METHOD_COLUMN_NAMES)
# Joined with the user's columns, a method's columns are prefixed: both tables have id and unionid.
_METHOD_PREFIX = "lm_"
_METHOD_COLUMNS_LM = ", ".join(f"lm.{c} AS {_METHOD_PREFIX}{c}" for c in _METHOD_COLUMN_NAMES)
# What /api/me prints of each method (LinkedMethod), and no more: it runs with every call.
_LINKED_COLUMNS_LM = "lm.login_method AS lm_login_method, lm.appid AS lm_appid, lm.created_at AS lm_created_at"
# The user, and whether session ``sid`` (the first parameter) was logged out.
_SESSION_USER = f"SELECT {USER_COLUMNS}, EXISTS(SELECT 1 FROM revoked_sessions r WHERE r.sid = %s) AS revoked"


def user_from_row(row: Row) -> User:
    """A User from a row holding the columns of ``USER_COLUMNS`` (other columns are ignored)."""
    return User(
        id=int(row["id"]),
        nickname=row["nickname"],
        avatar_url=row["avatar_url"],
        profile_is_placeholder=bool(row["profile_is_placeholder"]),
        unionid=row["unionid"],
        session_version=int(row["session_version"]),
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        last_login_at=row["last_login_at"],
        deletion_scheduled_at=row["deletion_scheduled_at"],
    )


def method_from_row(row: Row, prefix: str = "") -> LoginMethod:
    """A LoginMethod from a row holding the method's columns, each name after ``prefix``."""
    return LoginMethod(
        id=int(row[prefix + "id"]),
        user_id=int(row[prefix + "user_id"]),
        channel=Channel(row[prefix + "login_method"]),
        appid=row[prefix + "appid"],
        openid=row[prefix + "openid"],
        unionid=row[prefix + "unionid"],
        created_at=row[prefix + "created_at"],
        last_login_at=row[prefix + "last_login_at"],
    )


def merged_profile(user: User | None, profile: WeChatProfile | None) -> tuple[str, str, bool] | None:
    """Return the (nickname, avatar, placeholder) to store, or None to keep what the user has.

    WeChat's anonymised placeholders (微信用户 and the grey avatar) never overwrite a real profile.
    """
    if profile is None:
        return None
    if profile.is_placeholder and user is not None and user.nickname and not user.profile_is_placeholder:
        return None
    return profile.nickname, profile.avatar_url, profile.is_placeholder


@dataclass(frozen=True)
class StoredSessionKey:
    """A mini-program login method's openid and sealed session_key (None: none kept, or forgotten as stale)."""

    method_id: int
    openid: str
    session_key_enc: bytes | None = field(repr=False)


class UserStore:
    """SQL for users and login methods."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def login_or_register(
        self,
        identity: WeChatIdentity,
        profile: WeChatProfile | None,
        grant: EncryptedGrant | None,
        context: RequestContext,
        callback_nonce: str | None = None,
        allow_create: bool = True,
    ) -> LoginResult:
        """Find the person by (appid, openid), else by unionid, else create them; all in one transaction.

        The unionid does not lead back to an account this identity was unlinked from.
        With ``allow_create=False`` an unknown person raises NotFound and nothing is written.
        """

        async def work(cur: Cursor) -> LoginResult:
            return await _login_or_register(cur, identity, profile, grant, context, callback_nonce, allow_create)

        return await self.db.transaction(work)

    async def get_user(self, user_id: int) -> User | None:
        async def work(cur: aiomysql.Cursor) -> User | None:
            await cur.execute(f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = %s", (user_id,))
            row = await fetchone(cur)
            return user_from_row(row) if row else None

        return await self.db.run(work)

    async def get_session_user(self, user_id: int, sid: str) -> tuple[User | None, bool]:
        """Return the user and whether this session id was revoked, in one round trip."""

        async def work(cur: aiomysql.Cursor) -> tuple[User | None, bool]:
            await cur.execute(f"{_SESSION_USER} FROM users u WHERE u.id = %s", (sid, user_id))
            row = await fetchone(cur)
            if not row:
                return None, False
            return user_from_row(row), bool(row["revoked"])

        return await self.db.run(work)

    async def get_session_user_with_methods(
        self, user_id: int, sid: str
    ) -> tuple[User | None, bool, list[LinkedMethod], BoundPhone | None]:
        """Like ``get_session_user``, plus the user's login methods (as /api/me shows them) and bound phone, still
        in one round trip. ``user_phones`` has one row per user at most, so joining it multiplies nothing."""

        async def work(cur: aiomysql.Cursor) -> tuple[User | None, bool, list[LinkedMethod], BoundPhone | None]:
            await cur.execute(
                f"{_SESSION_USER}, {_LINKED_COLUMNS_LM}, p.phone, p.country_code, p.bound_at FROM users u "
                "LEFT JOIN user_login_methods lm ON lm.user_id = u.id "
                "LEFT JOIN user_phones p ON p.user_id = u.id WHERE u.id = %s ORDER BY lm.id",
                (sid, user_id),
            )
            rows = await fetchall(cur)
            if not rows:
                return None, False, [], None
            # A user without login methods still has one row, its method columns NULL (LEFT JOIN; the column is
            # NOT NULL in the table).
            methods = [
                LinkedMethod(channel=Channel(row["lm_login_method"]), appid=row["lm_appid"],
                             created_at=row["lm_created_at"])
                for row in rows if row["lm_login_method"] is not None
            ]
            phone = phone_from_row(rows[0]) if rows[0]["phone"] is not None else None
            return user_from_row(rows[0]), bool(rows[0]["revoked"]), methods, phone

        return await self.db.run(work)

    async def list_login_methods(self, user_id: int) -> list[LoginMethod]:
        async def work(cur: aiomysql.Cursor) -> list[LoginMethod]:
            await cur.execute(
                f"SELECT {_METHOD_COLUMNS} FROM user_login_methods WHERE user_id = %s ORDER BY id", (user_id,)
            )
            return [method_from_row(r) for r in await fetchall(cur)]

        return await self.db.run(work)

    async def miniprogram_session_key(self, user_id: int, appid: str) -> StoredSessionKey | None:
        """The user's mini-program login method under ``appid`` (its openid and sealed session_key), or None."""

        async def work(cur: aiomysql.Cursor) -> StoredSessionKey | None:
            await cur.execute(
                "SELECT id, openid, session_key_enc FROM user_login_methods WHERE user_id = %s AND appid = %s "
                "ORDER BY last_login_at DESC LIMIT 1",
                (user_id, appid),
            )
            row = await fetchone(cur)
            if row is None:
                return None
            sealed = bytes(row["session_key_enc"]) if row["session_key_enc"] is not None else None
            return StoredSessionKey(method_id=int(row["id"]), openid=row["openid"], session_key_enc=sealed)

        return await self.db.run(work)

    async def forget_session_key(self, method_id: int, sealed: bytes) -> None:
        """Drop a session_key WeChat called stale, unless a login has replaced it meanwhile (then it is fresh)."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute("UPDATE user_login_methods SET session_key_enc = NULL "
                              "WHERE id = %s AND session_key_enc = %s", (method_id, sealed))

        await self.db.run(work)

    async def revoke_session(self, sid: str, expires_at: datetime) -> None:
        """Mark one session (cookie or token) as logged out until it would have expired anyway."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute(
                "INSERT IGNORE INTO revoked_sessions (sid, expires_at) VALUES (%s, %s)", (sid, expires_at)
            )

        await self.db.run(work)

    async def bump_session_version(self, user_id: int) -> None:
        """End every session and token of this user at once."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute("UPDATE users SET session_version = session_version + 1 WHERE id = %s", (user_id,))

        await self.db.run(work)

    async def purge_expired_revocations(self, batch: int) -> int:
        """Delete up to ``batch`` revocations of sessions that have expired anyway; returns rows removed."""

        async def work(cur: aiomysql.Cursor) -> int:
            return int(await cur.execute(
                "DELETE FROM revoked_sessions WHERE expires_at < UTC_TIMESTAMP(3) LIMIT %s", (batch,)
            ))

        return await self.db.run(work)


async def _login_or_register(
    cur: Cursor,
    identity: WeChatIdentity,
    profile: WeChatProfile | None,
    grant: EncryptedGrant | None,
    context: RequestContext,
    callback_nonce: str | None,
    allow_create: bool,
) -> LoginResult:
    # Locking read: under READ COMMITTED it sees rows committed by a racing transaction.
    await cur.execute(
        f"SELECT lm.id AS method_id, lm.unionid AS method_unionid, {USER_COLUMNS} FROM user_login_methods lm "
        "JOIN users u ON u.id = lm.user_id WHERE lm.appid = %s AND lm.openid = %s FOR UPDATE",
        (identity.appid, identity.openid),
    )
    row = await fetchone(cur)
    created = False
    conflict_user_id: int | None = None
    if row:
        user = user_from_row(row)
        if identity.unionid and row["method_unionid"] != identity.unionid:
            conflict_user_id = await _attach_unionid(cur, int(row["method_id"]), user, identity.unionid)
    else:
        found: User | None = None
        new_unionid = identity.unionid
        if identity.unionid:
            # With whether the person unlinked this (appid, openid) from that account, in the same round trip.
            await cur.execute(
                f"SELECT {USER_COLUMNS}, EXISTS(SELECT 1 FROM unlinked_identities x WHERE x.appid = %s "
                "AND x.openid = %s AND x.user_id = u.id) AS unlinked FROM users u WHERE u.unionid = %s FOR UPDATE",
                (identity.appid, identity.openid, identity.unionid),
            )
            found_row = await fetchone(cur)
            found = user_from_row(found_row) if found_row else None
            if found_row is not None and found is not None and found_row["unlinked"]:
                # The person removed this identity from that account: it never re-attaches by itself.
                # It starts an account of its own, without the unionid (which stays with the old account;
                # the method row still records what WeChat said). Joining them again is an explicit link.
                logger.info("identity unlinked from user %d logs in: a new account, not that one", found.id)
                found, new_unionid = None, None
        if found is None:
            if not allow_create:
                raise NotFound("no such person")
            found = await _insert_user(cur, new_unionid, profile)
            created = True
        user = found
        await insert_method(cur, user.id, identity, grant)
    if user.disabled:
        raise AccountDisabled(f"user {user.id}", user_id=user.id)

    # From here on nothing is read: every write waits for the COMMIT and goes out in its packet (db.Cursor).
    new_profile = None if created else merged_profile(user, profile)
    if new_profile is not None:
        cur.defer(
            # A nickname WeChat hands us replaces one the person typed: no operator review waits for it any more.
            "UPDATE users SET nickname = %s, avatar_url = %s, profile_is_placeholder = %s, nickname_review = 0, "
            "last_login_at = UTC_TIMESTAMP(3) WHERE id = %s",
            (new_profile[0], new_profile[1], int(new_profile[2]), user.id),
        )
        user = _replace_profile(user, *new_profile)
    elif not created:
        cur.defer("UPDATE users SET last_login_at = UTC_TIMESTAMP(3) WHERE id = %s", (user.id,))
    if row:
        await touch_method(cur, int(row["method_id"]), grant)
    await insert_event(cur, user.id, identity.channel.value, "conflict" if conflict_user_id else "success", context)
    if callback_nonce:
        cur.defer(
            "UPDATE oauth_callbacks SET user_id = %s, status = %s WHERE nonce = %s",
            (user.id, CallbackStatus.OK, callback_nonce),
        )
    return LoginResult(user=user, created=created, conflict_user_id=conflict_user_id)


async def _attach_unionid(cur: Cursor, method_id: int, user: User, unionid: str) -> int | None:
    """Record the unionid WeChat now reports for a login method; return the other owner's id on a conflict.

    The method row records what WeChat said (a fact); ``users.unionid`` says which account owns the
    person and is only filled in when nobody else owns it, so a conflict never moves anything.
    """
    cur.defer("UPDATE user_login_methods SET unionid = %s WHERE id = %s", (unionid, method_id))
    await cur.execute("SELECT id FROM users WHERE unionid = %s", (unionid,))  # carries the UPDATE above
    owner = await fetchone(cur)
    if owner and int(owner["id"]) != user.id:
        logger.warning(
            "unionid conflict: login method %d of user %d reports a unionid owned by user %d; mapping kept",
            method_id, user.id, int(owner["id"]),
        )
        return int(owner["id"])
    if user.unionid is None:
        cur.defer("UPDATE users SET unionid = %s WHERE id = %s AND unionid IS NULL", (unionid, user.id))
    return None


async def _insert_user(cur: Cursor, unionid: str | None, profile: WeChatProfile | None) -> User:
    nickname, avatar, placeholder = (
        (profile.nickname, profile.avatar_url, profile.is_placeholder) if profile else ("", "", False)
    )
    await cur.execute(
        "INSERT INTO users (unionid, nickname, avatar_url, profile_is_placeholder, created_at, last_login_at) "
        "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
        (unionid, nickname, avatar, int(placeholder)),
    )
    now = datetime.now(UTC).replace(tzinfo=None)  # the database keeps naive UTC
    return User(
        id=int(cur.lastrowid), nickname=nickname, avatar_url=avatar, profile_is_placeholder=placeholder,
        unionid=unionid, session_version=1, disabled=False, created_at=now, last_login_at=now,
    )


async def insert_method(
    cur: aiomysql.Cursor, user_id: int, identity: WeChatIdentity, grant: EncryptedGrant | None
) -> None:
    """Add a login method. Deferred (``Cursor.defer``): it goes out with the next packet or the COMMIT."""
    g = grant or EncryptedGrant()
    cur.defer(
        "INSERT INTO user_login_methods (user_id, login_method, appid, openid, unionid, created_at, last_login_at, "
        "scope, access_token_enc, refresh_token_enc, access_token_expires_at, session_key_enc) "
        "VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), %s, %s, %s, "
        "UTC_TIMESTAMP(3) + INTERVAL %s SECOND, %s)",
        (user_id, identity.channel.value, identity.appid, identity.openid, identity.unionid, g.scope or None,
         g.access_token_enc, g.refresh_token_enc, g.access_token_expires_in, g.session_key_enc),
    )


async def touch_method(cur: aiomysql.Cursor, method_id: int, grant: EncryptedGrant | None) -> None:
    """Record a login through this method (deferred, like ``insert_method``)."""
    if grant is None:
        cur.defer("UPDATE user_login_methods SET last_login_at = UTC_TIMESTAMP(3) WHERE id = %s", (method_id,))
        return
    # The newest grant replaces the old one (a mini-program session_key is only valid until the next login).
    cur.defer(
        "UPDATE user_login_methods SET last_login_at = UTC_TIMESTAMP(3), scope = %s, access_token_enc = %s, "
        "refresh_token_enc = %s, access_token_expires_at = UTC_TIMESTAMP(3) + INTERVAL %s SECOND, "
        "session_key_enc = %s WHERE id = %s",
        (grant.scope or None, grant.access_token_enc, grant.refresh_token_enc, grant.access_token_expires_in,
         grant.session_key_enc, method_id),
    )


def _replace_profile(user: User, nickname: str, avatar: str, placeholder: bool) -> User:
    return replace(user, nickname=nickname, avatar_url=avatar, profile_is_placeholder=placeholder)
