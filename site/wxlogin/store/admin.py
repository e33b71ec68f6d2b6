"""What the operator console reads and writes: user search, a user's whole record, failed logins, the
dashboard's counts, and the operator audit log (``operator_actions``).

Every query here is bounded (LIMIT) and found by an index, except the nickname search, which scans ``users``
(a contains-match has no index; it stops at the limit). Phone numbers leave this module only as
``PhoneNumber`` (the pages show ``masked``); WeChat tokens and session keys are never selected.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

import aiomysql

from wxlogin.models import BoundPhone, Channel, LoginMethod, User
from wxlogin.store.accounts import unlink_method
from wxlogin.store.db import Database
from wxlogin.store.phones import AUDIT_METHOD as PHONE_METHOD
from wxlogin.store.phones import phone_from_row
from wxlogin.store.rows import Row, fetchall, fetchone
from wxlogin.store.users import USER_COLUMNS, user_from_row

# login_events.outcome of the rows that are not failures (store/users.py writes them inside the login).
SUCCESS_OUTCOMES = ("success", "conflict")
_NOT_FAILED = "e.outcome NOT IN ('success', 'conflict') AND e.login_method <> %s"
_EVENT_COLUMNS = ("e.id, e.user_id, e.login_method, e.outcome, e.ip, e.user_agent, e.wechat_errcode, e.wechat_rid, "
                  "e.created_at")
_ACTION_COLUMNS = "id, operator_id, action, target_user_id, detail, created_at"
_METHOD_COLUMNS = "id, user_id, login_method, appid, openid, unionid, created_at, last_login_at"


class OperatorAction(enum.StrEnum):
    """``operator_actions.action``: what an operator did."""

    DISABLE = "disable"
    ENABLE = "enable"
    SIGN_OUT = "sign_out_everywhere"
    UNLINK = "unlink"
    CANCEL_DELETION = "cancel_deletion"
    HASTEN_DELETION = "hasten_deletion"


@dataclass(frozen=True)
class AuditEntry:
    """One row of the operator audit log."""

    id: int
    operator_id: int
    action: str
    target_user_id: int | None
    detail: str
    created_at: datetime


@dataclass(frozen=True)
class AdminEvent:
    """A login_events row as operators see it: with WeChat's errcode and rid when WeChat refused."""

    id: int
    user_id: int | None
    channel: str
    outcome: str
    ip: str
    user_agent: str
    errcode: int | None
    rid: str
    created_at: datetime

    @property
    def failed(self) -> bool:
        return self.outcome not in SUCCESS_OUTCOMES and self.channel != PHONE_METHOD


@dataclass(frozen=True)
class UserHit:
    """A search result: the account, its masked phone, and which keys matched."""

    user: User
    phone: BoundPhone | None
    matched: tuple[str, ...]


@dataclass(frozen=True)
class UserRecord:
    """Everything the console shows about one account (no tokens, no session keys, the phone masked on pages)."""

    user: User
    nickname_review: bool  # issue 13: a nickname kept although WeChat's check said "review"
    avatar_review: str | None  # the SHA-256 of an avatar WeChat sent to review (kept, not shown)
    phone: BoundPhone | None
    methods: tuple[LoginMethod, ...]
    events: tuple[AdminEvent, ...]
    actions: tuple[AuditEntry, ...]


@dataclass(frozen=True)
class Dashboard:
    """Counts over the last ``hours``: logins per (channel, outcome) and WeChat's refusals per errcode."""

    hours: int
    by_channel: tuple[tuple[str, str, int], ...]
    by_errcode: tuple[tuple[int, int], ...]


async def _pending_deletion(cur: aiomysql.Cursor, user_id: int) -> datetime | None:
    """When the account is due to be deleted, locked until the transaction ends (None: not closing, or no account)."""
    await cur.execute("SELECT deletion_scheduled_at FROM users WHERE id = %s FOR UPDATE", (user_id,))
    row = await fetchone(cur)
    return row["deletion_scheduled_at"] if row is not None else None


def _ascii_key(value: str) -> bool:
    """Whether ``value`` may be compared with an ascii column (an IP, an openid, a unionid): printable ASCII only."""
    return value.isascii() and value.isprintable()


def _event(row: Row) -> AdminEvent:
    return AdminEvent(id=int(row["id"]), user_id=row["user_id"], channel=row["login_method"], outcome=row["outcome"],
                      ip=row["ip"], user_agent=row["user_agent"], errcode=row["wechat_errcode"],
                      rid=row["wechat_rid"] or "", created_at=row["created_at"])


def _entry(row: Row) -> AuditEntry:
    return AuditEntry(id=int(row["id"]), operator_id=int(row["operator_id"]), action=row["action"],
                      target_user_id=row["target_user_id"], detail=row["detail"], created_at=row["created_at"])


def _method(row: Row) -> LoginMethod:
    return LoginMethod(id=int(row["id"]), user_id=int(row["user_id"]), channel=Channel(row["login_method"]),
                       appid=row["appid"], openid=row["openid"], unionid=row["unionid"], created_at=row["created_at"],
                       last_login_at=row["last_login_at"])


def insert_action(cur: aiomysql.Cursor, operator_id: int, action: OperatorAction, target_user_id: int | None,
                  detail: str = "") -> None:
    """One audit row (detail cut to its 255 characters), in the action's own transaction.

    Deferred (store/db.py): nothing reads its result, so it rides with the COMMIT, no round trip of its own; if
    it fails, the commit fails and the action is rolled back with it (an action never goes unrecorded).
    """
    cur.defer(
        "INSERT INTO operator_actions (operator_id, action, target_user_id, detail, created_at) "
        "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3))",
        (operator_id, action.value, target_user_id, detail[:255]),
    )


def _was_due(when: datetime) -> str:
    return f"was due {when:%Y-%m-%d %H:%M} UTC"


class AdminStore:
    """SQL for the operator console."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- search -------------------------------------------------------------------------------

    async def search(self, *, user_id: int | None, phones: tuple[str, ...], text: str, limit: int) -> list[UserHit]:
        """Accounts whose id, phone (exact E.164 candidates), openid, unionid (exact) or nickname (contains) match."""

        async def work(cur: aiomysql.Cursor) -> list[UserHit]:
            matched: dict[int, list[str]] = {}

            def add(rows: list[Row], key: str) -> None:
                for r in rows:
                    matched.setdefault(int(r["id"]), []).append(key)

            if user_id is not None:
                await cur.execute("SELECT id FROM users WHERE id = %s", (user_id,))
                add(await fetchall(cur), "id")
            if phones:
                await cur.execute("SELECT user_id AS id FROM user_phones WHERE phone IN %s", (phones,))
                add(await fetchall(cur), "phone")
            if _ascii_key(text):
                # ix_login_methods_openid (migration 11) and the unionid keys; exact matches only. The ID columns
                # are ascii: anything else could not match (and MySQL refuses to compare it: "illegal mix").
                await cur.execute("SELECT DISTINCT user_id AS id FROM user_login_methods WHERE openid = %s LIMIT %s",
                                  (text, limit))
                add(await fetchall(cur), "openid")
                await cur.execute(
                    "SELECT id FROM users WHERE unionid = %s UNION "
                    "SELECT user_id AS id FROM user_login_methods WHERE unionid = %s LIMIT %s", (text, text, limit))
                add(await fetchall(cur), "unionid")
            if text:
                pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                await cur.execute("SELECT id FROM users WHERE nickname LIKE %s ORDER BY id DESC LIMIT %s",
                                  (pattern, limit))
                add(await fetchall(cur), "nickname")
            if not matched:
                return []
            ids = tuple(sorted(matched, reverse=True)[:limit])
            await cur.execute(
                f"SELECT {USER_COLUMNS}, p.phone, p.country_code, p.bound_at FROM users u "
                "LEFT JOIN user_phones p ON p.user_id = u.id WHERE u.id IN %s ORDER BY u.id DESC", (ids,))
            return [UserHit(user=user_from_row(r), phone=phone_from_row(r) if r["phone"] else None,
                            matched=tuple(dict.fromkeys(matched[int(r["id"])])))
                    for r in await fetchall(cur)]

        return await self.db.run(work)

    # --- one account ----------------------------------------------------------------------------

    async def record(self, user_id: int, events: int, actions: int) -> UserRecord | None:
        """The account's profile, review flags, phone, login methods, recent events and operators' actions on it."""

        async def work(cur: aiomysql.Cursor) -> UserRecord | None:
            await cur.execute(
                f"SELECT {USER_COLUMNS}, u.nickname_review, u.avatar_review, p.phone, p.country_code, p.bound_at "
                "FROM users u LEFT JOIN user_phones p ON p.user_id = u.id WHERE u.id = %s", (user_id,))
            row = await fetchone(cur)
            if row is None:
                return None
            await cur.execute(f"SELECT {_METHOD_COLUMNS} FROM user_login_methods WHERE user_id = %s ORDER BY id",
                              (user_id,))
            methods = tuple(_method(r) for r in await fetchall(cur))
            await cur.execute(f"SELECT {_EVENT_COLUMNS} FROM login_events e WHERE e.user_id = %s "
                              "ORDER BY e.created_at DESC, e.id DESC LIMIT %s", (user_id, events))
            found = tuple(_event(r) for r in await fetchall(cur))
            await cur.execute(f"SELECT {_ACTION_COLUMNS} FROM operator_actions WHERE target_user_id = %s "
                              "ORDER BY created_at DESC, id DESC LIMIT %s", (user_id, actions))
            done = tuple(_entry(r) for r in await fetchall(cur))
            return UserRecord(user=user_from_row(row), nickname_review=bool(row["nickname_review"]),
                              avatar_review=row["avatar_review"], phone=phone_from_row(row) if row["phone"] else None,
                              methods=methods, events=found, actions=done)

        return await self.db.run(work)

    async def set_disabled(self, operator_id: int, user_id: int, disabled: bool, detail: str) -> bool:
        """Disable (and end every session and token at once) or enable an account, with its audit row.

        Returns False when there is no such account. Disabling also bumps ``session_version``: the sessions
        it ended stay ended after the account is enabled again.
        """

        async def work(cur: aiomysql.Cursor) -> bool:
            if disabled:
                await cur.execute("UPDATE users SET disabled = 1, session_version = session_version + 1 WHERE id = %s",
                                  (user_id,))
            else:
                await cur.execute("UPDATE users SET disabled = 0 WHERE id = %s", (user_id,))
            await cur.execute("SELECT 1 FROM users WHERE id = %s", (user_id,))
            if await fetchone(cur) is None:
                return False
            action = OperatorAction.DISABLE if disabled else OperatorAction.ENABLE
            insert_action(cur, operator_id, action, user_id, detail)
            return True

        return await self.db.transaction(work)

    # Each action below is one transaction with its audit row: both happen, or neither.

    async def sign_out_everywhere(self, operator_id: int, user_id: int) -> bool:
        """End every session and token of the account (``SessionService.end_all``'s statement); False: no account."""

        async def work(cur: aiomysql.Cursor) -> bool:
            if not await cur.execute("UPDATE users SET session_version = session_version + 1 WHERE id = %s",
                                     (user_id,)):
                return False
            insert_action(cur, operator_id, OperatorAction.SIGN_OUT, user_id)
            return True

        return await self.db.transaction(work)

    async def unlink(self, operator_id: int, user_id: int, method_id: int) -> None:
        """Remove one login method as the person's own unlink does (``store.accounts.unlink_method``: never the
        last, the identity does not re-attach, every session ends), with its audit row (channel, appid, id)."""

        async def work(cur: aiomysql.Cursor) -> None:
            removed = await unlink_method(cur, user_id, method_id)
            insert_action(cur, operator_id, OperatorAction.UNLINK, user_id,
                          f"{removed['login_method']} {removed['appid']} method {method_id}")

        await self.db.transaction(work)

    async def cancel_deletion(self, operator_id: int, user_id: int) -> datetime | None:
        """Keep an account its owner closed; returns when it was due, None when no deletion is pending."""

        async def work(cur: aiomysql.Cursor) -> datetime | None:
            when = await _pending_deletion(cur, user_id)
            if when is not None:
                await cur.execute("UPDATE users SET deletion_scheduled_at = NULL WHERE id = %s", (user_id,))
                insert_action(cur, operator_id, OperatorAction.CANCEL_DELETION, user_id, _was_due(when))
            return when

        return await self.db.transaction(work)

    async def hasten_deletion(self, operator_id: int, user_id: int) -> datetime | None:
        """Make a pending deletion due now (``DeletionStore.hasten``'s rule); returns when it was due, or None."""

        async def work(cur: aiomysql.Cursor) -> datetime | None:
            when = await _pending_deletion(cur, user_id)
            if when is not None:
                await cur.execute("UPDATE users SET deletion_scheduled_at = LEAST(deletion_scheduled_at, "
                                  "UTC_TIMESTAMP(3)) WHERE id = %s", (user_id,))
                insert_action(cur, operator_id, OperatorAction.HASTEN_DELETION, user_id, _was_due(when))
            return when

        return await self.db.transaction(work)

    async def actions(self, limit: int) -> list[AuditEntry]:
        """The newest operator actions, all accounts."""

        async def work(cur: aiomysql.Cursor) -> list[AuditEntry]:
            await cur.execute(f"SELECT {_ACTION_COLUMNS} FROM operator_actions "
                              "ORDER BY created_at DESC, id DESC LIMIT %s", (limit,))
            return [_entry(r) for r in await fetchall(cur)]

        return await self.db.run(work)

    # --- failures and counts ----------------------------------------------------------------------

    async def failures(self, *, hours: int, ip: str, channel: str, errcode: int | None, limit: int) -> list[AdminEvent]:
        """Failed logins of the last ``hours``, newest first; ``ip``/``channel``/``errcode`` narrow it ("", None: any).

        By address: ix_login_events_ip (ip, created_at); otherwise ix_login_events_created, read backwards. An
        address no row can hold (the column is ascii) finds nothing without asking: MySQL would refuse to compare
        it ("illegal mix of collations", an operational error that would open the breaker for every request).
        """
        if not _ascii_key(ip):
            return []
        # Fixed SQL: an empty filter ("" or NULL) matches every row, so no SQL text depends on the filters.
        args = (PHONE_METHOD, hours, ip, ip, channel, channel, errcode, errcode, limit)
        async def work(cur: aiomysql.Cursor) -> list[AdminEvent]:
            await cur.execute(FAILURES, args)
            return [_event(r) for r in await fetchall(cur)]

        return await self.db.run(work)

    async def dashboard(self, hours: int) -> Dashboard:
        """Logins per channel and outcome, and WeChat's errcodes, over the last ``hours``.

        Both read a range of ix_login_events_created.
        """

        async def work(cur: aiomysql.Cursor) -> Dashboard:
            await cur.execute(DASHBOARD_BY_CHANNEL, (hours, PHONE_METHOD))
            by_channel = tuple((r["login_method"], r["outcome"], int(r["n"])) for r in await fetchall(cur))
            await cur.execute(DASHBOARD_BY_ERRCODE, (hours,))
            by_errcode = tuple((int(r["wechat_errcode"]), int(r["n"])) for r in await fetchall(cur))
            return Dashboard(hours=hours, by_channel=by_channel, by_errcode=by_errcode)

        return await self.db.run(work)


# Failed logins, newest first, each filter off when its value is "" (ip, channel) or NULL (errcode).
FAILURES = (
    f"SELECT {_EVENT_COLUMNS} FROM login_events e WHERE {_NOT_FAILED} "
    "AND e.created_at >= UTC_TIMESTAMP(3) - INTERVAL %s HOUR "
    "AND (%s = '' OR e.ip = %s) AND (%s = '' OR e.login_method = %s) "
    "AND (%s IS NULL OR e.wechat_errcode = %s) "
    "ORDER BY e.created_at DESC, e.id DESC LIMIT %s"
)
# Both read a range of ix_login_events_created (a test EXPLAINs them): the console must stay cheap on a table
# that holds every login attempt of the retention period.
DASHBOARD_BY_CHANNEL = (
    "SELECT login_method, outcome, COUNT(*) AS n FROM login_events "
    "WHERE created_at >= UTC_TIMESTAMP(3) - INTERVAL %s HOUR AND login_method <> %s "
    "GROUP BY login_method, outcome ORDER BY login_method, outcome"
)
DASHBOARD_BY_ERRCODE = (
    "SELECT wechat_errcode, COUNT(*) AS n FROM login_events "
    "WHERE created_at >= UTC_TIMESTAMP(3) - INTERVAL %s HOUR AND wechat_errcode IS NOT NULL "
    "GROUP BY wechat_errcode ORDER BY n DESC, wechat_errcode"
)
