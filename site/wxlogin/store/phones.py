"""Phone numbers bound to accounts, and the getPhoneNumber codes already sent to WeChat.

``UNIQUE(user_phones.phone)`` decides who gets a number: when two accounts bind one number at once, one
INSERT wins and the other meets a duplicate key; ``Database.transaction`` runs the loser again, which
now finds the winner's row and answers ``PhoneInUse``. A number never moves between accounts here (the
merge in accounts.py carries it along when the account that owned it is merged away).

The full number is personal data: it is written and read here, and no log line in this module names it.
Binding and unbinding leave a row in the audit trail (``login_events``, method ``phone``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import aiomysql
import pymysql

from wxlogin.errors import NotFound, PhoneInUse
from wxlogin.models import BoundPhone, PhoneNumber, RequestContext
from wxlogin.store.db import ER_DUP_ENTRY, ER_NO_REFERENCED_ROW, Database, error_number
from wxlogin.store.events import insert_event
from wxlogin.store.rows import Row, fetchone

AUDIT_METHOD = "phone"  # login_events.login_method of the phone rows
CODE_ROW_MINUTES = 10  # a code lives 5 minutes; its claim is kept twice that


class PhoneAudit(enum.StrEnum):
    """``login_events.outcome`` of the phone rows."""

    BOUND = "phone_bound"
    UNBOUND = "phone_unbound"
    IN_USE = "phone_in_use"  # tried to bind a number another account holds; nothing changed


@dataclass(frozen=True)
class CodeClaim:
    """The record of a getPhoneNumber code: fresh (ours to send now), or what its first use came to."""

    fresh: bool
    user_id: int
    outcome: str  # "pending" while the first call runs, "ok", or the error code it ended with


def phone_from_row(row: Row) -> BoundPhone:
    country = str(row["country_code"])
    return BoundPhone(number=PhoneNumber(country_code=country, national=str(row["phone"])[1 + len(country):]),
                      bound_at=row["bound_at"])


class PhoneStore:
    """SQL for ``user_phones`` and ``phone_codes``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: int) -> BoundPhone | None:
        async def work(cur: aiomysql.Cursor) -> BoundPhone | None:
            await cur.execute("SELECT phone, country_code, bound_at FROM user_phones WHERE user_id = %s", (user_id,))
            row = await fetchone(cur)
            return phone_from_row(row) if row else None

        return await self.db.run(work)

    async def claim_code(self, code_hash: bytes, user_id: int) -> CodeClaim:
        """Claim a code before it goes to WeChat; a second claim reports the first one's user and outcome."""

        async def work(cur: aiomysql.Cursor) -> CodeClaim:
            try:
                await cur.execute("INSERT INTO phone_codes (code_hash, user_id, created_at) "
                                  "VALUES (%s, %s, UTC_TIMESTAMP(3))", (code_hash, user_id))
                return CodeClaim(fresh=True, user_id=user_id, outcome="pending")
            except pymysql.err.IntegrityError as exc:
                if error_number(exc) != ER_DUP_ENTRY:
                    raise
            await cur.execute("SELECT user_id, outcome FROM phone_codes WHERE code_hash = %s", (code_hash,))
            row = await fetchone(cur)
            if row is None:  # purged between the two statements: long dead at WeChat too
                return CodeClaim(fresh=False, user_id=0, outcome="expired")
            return CodeClaim(fresh=False, user_id=int(row["user_id"]), outcome=str(row["outcome"]))

        return await self.db.run(work)

    async def finish_code(self, code_hash: bytes, outcome: str) -> None:
        """Record how a claimed code's WeChat call ended (an error code), for its repeats."""

        async def work(cur: aiomysql.Cursor) -> None:
            await cur.execute("UPDATE phone_codes SET outcome = %s WHERE code_hash = %s AND outcome = 'pending'",
                              (outcome[:32], code_hash))

        await self.db.run(work)

    async def bind(self, user_id: int, number: PhoneNumber, context: RequestContext, code_hash: bytes) -> BoundPhone:
        """Bind the number to this account (replacing its previous one), in one transaction with the audit row
        and the code's outcome. Raises PhoneInUse when another account holds it: nothing changes then."""

        async def work(cur: aiomysql.Cursor) -> BoundPhone:
            # Locking read: under READ COMMITTED it sees a racing transaction's committed row.
            await cur.execute("SELECT user_id, phone, country_code, bound_at FROM user_phones "
                              "WHERE phone = %s FOR UPDATE", (number.e164,))
            row = await fetchone(cur)
            if row is not None and int(row["user_id"]) != user_id:
                raise PhoneInUse()
            if row is None:
                await cur.execute("DELETE FROM user_phones WHERE user_id = %s", (user_id,))
                try:
                    # A racing bind of the same number fails here with a duplicate key and runs again.
                    await cur.execute("INSERT INTO user_phones (user_id, phone, country_code, bound_at) "
                                      "VALUES (%s, %s, %s, UTC_TIMESTAMP(3))",
                                      (user_id, number.e164, number.country_code))
                except pymysql.err.IntegrityError as exc:
                    if error_number(exc) != ER_NO_REFERENCED_ROW:
                        raise
                    raise NotFound("account") from None
                await _audit(cur, user_id, PhoneAudit.BOUND, context)
                await cur.execute("SELECT phone, country_code, bound_at FROM user_phones WHERE user_id = %s",
                                  (user_id,))
                row = await fetchone(cur)
                assert row is not None
            await cur.execute("UPDATE phone_codes SET outcome = 'ok' WHERE code_hash = %s", (code_hash,))
            return phone_from_row(row)

        return await self.db.transaction(work)

    async def record_conflict(self, user_id: int, context: RequestContext, code_hash: bytes) -> None:
        """Audit a refused bind (the number is another account's) and remember it as the code's outcome."""

        async def work(cur: aiomysql.Cursor) -> None:
            await _audit(cur, user_id, PhoneAudit.IN_USE, context)
            await cur.execute("UPDATE phone_codes SET outcome = %s WHERE code_hash = %s",
                              (PhoneInUse.code, code_hash))

        await self.db.transaction(work)

    async def unbind(self, user_id: int, context: RequestContext) -> bool:
        """Remove the account's number (audited); False if it had none."""

        async def work(cur: aiomysql.Cursor) -> bool:
            if not await cur.execute("DELETE FROM user_phones WHERE user_id = %s", (user_id,)):
                return False
            await _audit(cur, user_id, PhoneAudit.UNBOUND, context)
            return True

        return await self.db.transaction(work)

    async def purge_codes(self, batch: int) -> int:
        """Delete up to ``batch`` code claims older than any code can live; returns rows removed."""

        async def work(cur: aiomysql.Cursor) -> int:
            return int(await cur.execute(
                "DELETE FROM phone_codes WHERE created_at < UTC_TIMESTAMP(3) - INTERVAL %s MINUTE LIMIT %s",
                (CODE_ROW_MINUTES, batch),
            ))

        return await self.db.run(work)


async def _audit(cur: aiomysql.Cursor, user_id: int, outcome: PhoneAudit, context: RequestContext) -> None:
    """One audit row (never the number itself)."""
    await insert_event(cur, user_id, AUDIT_METHOD, outcome.value, context)
