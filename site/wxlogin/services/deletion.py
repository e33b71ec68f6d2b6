"""Closing an account (注销) and the data export: schedule, cancel, hasten, the deletion job, download my data.

Closing marks the account and ends every session and token at once; the person may sign in again during
``[accounts] deletion_grace_days`` to cancel, and may then only restore, export and sign out (handlers
enforce it by ``User.deletion_pending``). The job (``run_forever`` in the server, every ``purge_interval``
seconds) deletes the accounts that are due, one person per transaction, under a MySQL named lock so one
process at a time runs it across every machine. All of its state is in MySQL, so a restart loses nothing
and a run that died half-way is simply repeated.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from wxlogin.config import Settings
from wxlogin.errors import DatabaseUnavailable, NotFound, Overloaded
from wxlogin.models import PhoneNumber
from wxlogin.store.deletions import DeletionStore, PersonData

logger = logging.getLogger(__name__)

JOB_BATCH = 100  # accounts asked for per query; each is still deleted in a transaction of its own
# The first run comes this long after start-up (at most; jittered so a fleet restarted together does not line up),
# not a whole purge_interval later: servers redeployed more often than the interval would otherwise never run it.
FIRST_RUN_DELAY = 60.0
EXPORT_FORMAT = 1  # the export's "format" field: bumped if a field changes meaning


def aware(moment: datetime) -> datetime:
    """MySQL's naive UTC as an aware datetime (isoformat then says +00:00)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 with the zone, as the API and the export write times."""
    return aware(moment).isoformat(timespec="seconds") if moment is not None else None


class DeletionService:
    """Closing accounts for people (pages, API) and operators (admin console), and the job that deletes them."""

    def __init__(self, settings: Settings, store: DeletionStore) -> None:
        self.settings = settings
        self.store = store

    @property
    def grace_days(self) -> int:
        return self.settings.accounts.deletion_grace_days

    # --- the person's and the operators' actions ----------------------------------------------------

    async def schedule(self, user_id: int) -> datetime:
        """Close the account: it is deleted at the returned time (aware UTC); every session and token ends now.

        Closing an account that is closing already keeps its date. Raises NotFound for no such account.
        """
        when = await self.store.schedule(user_id, self.grace_days)
        if when is None:
            raise NotFound("account")
        logger.info("user %d closed the account; deletion due %s", user_id, iso(when))
        return aware(when)

    async def cancel(self, user_id: int) -> bool:
        """Keep the account after all; True if a deletion was pending (False: nothing to cancel)."""
        cancelled = await self.store.cancel(user_id)
        if cancelled:
            logger.info("user %d cancelled the deletion of the account", user_id)
        return cancelled

    async def hasten(self, user_id: int) -> None:
        """Make a pending deletion due now, so the next run of the job deletes the account (operators).

        Raises NotFound when the account has no pending deletion: hastening never closes an account by itself.
        """
        if not await self.store.hasten(user_id):
            raise NotFound("pending deletion")
        logger.info("the deletion of user %d was hastened: the next run of the job deletes it", user_id)

    async def scheduled_at(self, user_id: int) -> datetime | None:
        """When the account will be deleted (aware UTC), or None when it is not closing."""
        when = await self.store.scheduled_at(user_id)
        return aware(when) if when is not None else None

    async def count_pending(self) -> int:
        """Accounts closing now (in their grace period or due): for the metrics' gauge."""
        return await self.store.count_pending()

    def would_delete_at(self) -> datetime:
        """When an account closed now would be deleted (for the page that asks to confirm)."""
        return datetime.now(UTC) + timedelta(days=self.grace_days)

    # --- the job -----------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Delete every account that is due; returns how many people were deleted by this run.

        Skips at once (0) while another process, here or on another machine, holds the job's lock.
        """
        deleted = 0
        async with self.store.job_lock() as held:
            if not held:
                logger.info("deletion job: another process is running it; skipped")
                return 0
            while True:
                due = await self.store.due(JOB_BATCH)
                for user_id in due:
                    if await self.store.delete_person(user_id):
                        deleted += 1
                if len(due) < JOB_BATCH:
                    break
        if deleted:
            logger.info("deletion job: deleted %d accounts", deleted)
        return deleted

    async def run_forever(self) -> None:
        """Run the job soon after start-up, then every ``[accounts] purge_interval`` seconds, until cancelled.

        server.py starts it in every process; the lock lets one of them work each round. A failure is logged
        and the next round tries again: the state is all in MySQL, so nothing is lost by skipping one.
        """
        interval = self.settings.accounts.purge_interval
        await asyncio.sleep(min(interval, FIRST_RUN_DELAY) * random.uniform(0.5, 1.0))
        while True:
            try:
                await self.run_once()
            except (DatabaseUnavailable, Overloaded) as exc:
                logger.warning("deletion job: database unavailable (%s); next run in %ds", exc.detail, interval)
            except Exception:
                logger.exception("deletion job failed; next run in %ds", interval)
            await asyncio.sleep(interval)

    # --- download my data --------------------------------------------------------------------------

    async def export(self, user_id: int, *, full_phone: bool = False) -> dict[str, Any]:
        """Everything held about the person as one JSON-ready object; never a token or a session key.

        The phone number is masked unless ``full_phone`` (the caller checked the sign-in is recent).
        """
        data = await self.store.export(user_id)
        if data is None:
            raise NotFound("account")
        return export_json(data, full_phone=full_phone)


def export_json(data: PersonData, *, full_phone: bool) -> dict[str, Any]:
    """The export's shape (README, "Download my data"): times in ISO 8601 with the zone."""
    user = data.user
    phone: dict[str, Any] | None = None
    if data.phone is not None:
        code = str(data.phone["country_code"])
        number = PhoneNumber(country_code=code, national=str(data.phone["phone"])[1 + len(code):])
        phone = {"number": number.e164 if full_phone else number.masked, "masked": not full_phone,
                 "country_code": code, "bound_at": iso(data.phone["bound_at"])}
    return {
        "format": EXPORT_FORMAT,
        "exported_at": iso(datetime.now(UTC)),
        "user": {
            "id": int(user["id"]), "nickname": user["nickname"], "avatar_url": user["avatar_url"],
            "profile_is_placeholder": bool(user["profile_is_placeholder"]),
            "nickname_under_review": bool(user["nickname_review"]), "unionid": user["unionid"],
            "created_at": iso(user["created_at"]), "last_login_at": iso(user["last_login_at"]),
            "deletion_scheduled_at": iso(user["deletion_scheduled_at"]),
        },
        "login_methods": [
            {"channel": m["login_method"], "appid": m["appid"], "openid": m["openid"], "unionid": m["unionid"],
             "scope": m["scope"], "linked_at": iso(m["created_at"]), "last_login_at": iso(m["last_login_at"])}
            for m in data.login_methods
        ],
        "phone": phone,
        "login_history": [
            {"at": iso(ev["created_at"]), "channel": ev["login_method"], "outcome": ev["outcome"], "ip": ev["ip"],
             "user_agent": ev["user_agent"]}
            for ev in data.login_events
        ],
        "unlinked_identities": [
            {"appid": u["appid"], "openid": u["openid"], "unlinked_at": iso(u["unlinked_at"])}
            for u in data.unlinked_identities
        ],
    }
