"""The operator console as a service: who is an operator, search, a user's record, failed logins, the
dashboard, and the actions (disable, enable, sign out everywhere, unlink, cancel or hasten a deletion), each
written to the audit log in the action's own transaction (store/admin.py): an action is never done unrecorded.

Who is an operator is ``[admin] user_ids``; a disabled account is no operator. The recent sign-in that every
action needs is checked by the handler with ``SessionService.signed_in_recently`` (it decides where to send a
stale session); this service only acts and records.
"""

from __future__ import annotations

import logging
import re

from wxlogin.config import Settings
from wxlogin.errors import BadRequest, NotFound
from wxlogin.models import User
from wxlogin.store.admin import (
    AdminEvent,
    AdminStore,
    AuditEntry,
    Dashboard,
    UserHit,
    UserRecord,
)

logger = logging.getLogger(__name__)

SEARCH_LIMIT = 50
EVENTS_SHOWN = 50  # a user's page: login history rows
ACTIONS_SHOWN = 50  # a user's page and the log page: operator actions
FAILURES_SHOWN = 100
MAX_HOURS = 24 * 31  # the dashboard's and the failures' window: at most a month
_PHONE_RE = re.compile(r"^\+?[0-9][0-9 -]{5,20}$")
_MAX_QUERY = 128
_ID_RE = re.compile(r"[0-9]{1,18}")  # users.id: a BIGINT, so at most 18 digits are surely in range


def phone_candidates(query: str) -> tuple[str, ...]:
    """The stored forms (E.164, store/phones.py) a typed number may be: "+8613800138000" for "13800138000"."""
    if not _PHONE_RE.match(query):
        return ()
    digits = re.sub(r"[ -]", "", query).lstrip("+")
    if query.startswith("+"):
        return (f"+{digits}",)
    found = [f"+{digits}"]
    if len(digits) == 11 and digits.startswith("1"):  # a mainland mobile number typed without +86
        found.append(f"+86{digits}")
    return tuple(found)


class AdminService:
    """The operator console's reads and actions."""

    def __init__(self, settings: Settings, store: AdminStore) -> None:
        self.operators = frozenset(settings.admin.user_ids)
        self.store = store

    def is_operator(self, user: User | None) -> bool:
        """Whether this signed-in person may see the console at all (everyone else gets 404 there)."""
        return user is not None and user.id in self.operators and not user.disabled and not user.deletion_pending

    async def search(self, query: str) -> list[UserHit]:
        """Accounts matching an id, a phone number, an openid, a unionid or part of a nickname."""
        query = query.strip()[:_MAX_QUERY]
        if not query:
            return []
        # ASCII digits only: str.isdigit() is true for "²" or "①" too, which int() refuses (a 500).
        user_id = int(query) if _ID_RE.fullmatch(query) else None
        return await self.store.search(user_id=user_id, phones=phone_candidates(query), text=query,
                                       limit=SEARCH_LIMIT)

    async def record(self, user_id: int) -> UserRecord:
        """Everything the console shows about one account; NotFound when there is none."""
        found = await self.store.record(user_id, EVENTS_SHOWN, ACTIONS_SHOWN)
        if found is None:
            raise NotFound("account")
        return found

    async def failures(self, hours: int, ip: str = "", channel: str = "", errcode: int | None = None
                       ) -> list[AdminEvent]:
        """Failed logins of the last ``hours`` (most are nobody's: a failed login never established who it was)."""
        return await self.store.failures(hours=_hours(hours), ip=ip.strip()[:45], channel=channel[:16],
                                         errcode=errcode, limit=FAILURES_SHOWN)

    async def dashboard(self, hours: int) -> Dashboard:
        return await self.store.dashboard(_hours(hours))

    async def actions(self) -> list[AuditEntry]:
        """The newest operator actions on every account."""
        return await self.store.actions(ACTIONS_SHOWN)

    # --- actions: each one acts, then lands in operator_actions ------------------------------------------

    async def disable(self, operator: User, user_id: int, reason: str = "") -> None:
        """Disable an account: it cannot sign in, and its sessions and tokens end at once."""
        if user_id == operator.id:
            raise BadRequest("an operator cannot disable their own account")
        await self._set_disabled(operator, user_id, True, reason)

    async def enable(self, operator: User, user_id: int, reason: str = "") -> None:
        await self._set_disabled(operator, user_id, False, reason)

    async def _set_disabled(self, operator: User, user_id: int, disabled: bool, reason: str) -> None:
        if not await self.store.set_disabled(operator.id, user_id, disabled, reason.strip()):
            raise NotFound("account")
        logger.info("operator %d %s user %d", operator.id, "disabled" if disabled else "enabled", user_id)

    async def sign_out_everywhere(self, operator: User, user_id: int) -> None:
        """End every session and token of the account (it may sign in again)."""
        if not await self.store.sign_out_everywhere(operator.id, user_id):
            raise NotFound("account")
        logger.info("operator %d signed user %d out everywhere", operator.id, user_id)

    async def unlink(self, operator: User, user_id: int, method_id: int) -> None:
        """Remove one login method, never the last (LastLoginMethod): to shut an account out, disable it.

        Like the person's own unlink, the identity does not re-attach by itself and every session ends.
        """
        await self.store.unlink(operator.id, user_id, method_id)
        logger.info("operator %d unlinked method %d of user %d", operator.id, method_id, user_id)

    async def cancel_deletion(self, operator: User, user_id: int) -> None:
        """Keep an account its owner closed (NotFound when no deletion is pending)."""
        if await self.store.cancel_deletion(operator.id, user_id) is None:
            raise NotFound("pending deletion")
        logger.info("operator %d cancelled the deletion of user %d", operator.id, user_id)

    async def hasten_deletion(self, operator: User, user_id: int) -> None:
        """Make a pending deletion due now: the next run of the job deletes the account (never closes one itself)."""
        if await self.store.hasten_deletion(operator.id, user_id) is None:
            raise NotFound("pending deletion")
        logger.info("operator %d hastened the deletion of user %d", operator.id, user_id)


def _hours(hours: int) -> int:
    return max(1, min(hours, MAX_HOURS))
