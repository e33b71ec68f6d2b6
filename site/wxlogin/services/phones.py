"""Phone numbers from the mini-program's getPhoneNumber button: bind (a paid WeChat call), show masked, unbind.

- **Paid, so limited**: every success costs the site money (wechat-platform.md section 2). Before anything
  else a bind spends one hit of the account's daily budget and one of its IP's minute budget (shared in
  MySQL by every process), so neither a stolen token nor a busy NAT can run up the bill.
- **One WeChat call per code**: the code's hash is claimed in MySQL before the call (``phone_codes``, like
  ``oauth_callbacks``), and the call is never retried (``retry=False``: a lost answer may have been a paid
  success). A repeat by the same account gets the first outcome (its number, or ``phone_in_use``) or
  ``phone_code_invalid``, never a second call; another account's repeat is ``phone_code_invalid``. The one
  exception is WeChat refusing the site's own app token (40001/40014/42001): ``AppTokenService.call`` runs
  the request once more with a fresh token. WeChat answers those before it looks at the code, so nothing
  was charged or used up.
- **Never moved**: a number held by another account is ``phone_in_use`` (409) and changes nothing, also
  when the person proves both accounts. Merging the accounts (issue 12's merge flow) is how a number moves:
  the merge carries it to the account that stays when that one has none.
- **Personal data**: the full number exists only in MySQL and in ``PhoneNumber``, whose repr is masked. The
  API and the pages show ``PhoneNumber.masked``; no log line names the number.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging

from wxlogin.config import Settings, WeChatApp
from wxlogin.errors import (
    BadRequest,
    DatabaseUnavailable,
    Overloaded,
    PhoneCodeInvalid,
    PhoneInUse,
    WxLoginError,
)
from wxlogin.models import BoundPhone, Channel, RequestContext, User
from wxlogin.services.apps import choose_app
from wxlogin.services.apptoken import AppTokenService
from wxlogin.services.ratelimit import RateLimits
from wxlogin.store import UserStore
from wxlogin.store.phones import CodeClaim, PhoneStore
from wxlogin.wechat.client import WeChatClient

logger = logging.getLogger(__name__)


class PhoneService:
    """Binds WeChat-attested phone numbers to accounts, at most one each way."""

    def __init__(self, settings: Settings, phones: PhoneStore, users: UserStore, wechat: WeChatClient,
                 app_tokens: AppTokenService, limits: RateLimits) -> None:
        self.settings = settings
        self.phones = phones
        self.users = users
        self.wechat = wechat
        self.app_tokens = app_tokens
        self.limits = limits

    def _app(self, name: str = "") -> WeChatApp:
        """The mini-program whose button handed out the code (the one place that picks it)."""
        return choose_app(self.settings.wechat, Channel.MINIPROGRAM, name)

    async def bind(self, user: User, code: str, context: RequestContext, app_name: str = "") -> BoundPhone:
        """Ask WeChat for the number behind ``code`` (once) and bind it to ``user``.

        Raises RateLimited, PhoneCodeInvalid, PhoneInUse, or WeChat's errors (nothing bound then).
        """
        # Both budgets before the claim: a refused request leaves the code unclaimed and unspent.
        app = self._app(app_name)  # an unknown app is a bad request, before any budget is spent
        await self.limits.phone_ip.hit(context.ip)
        await self.limits.phone_user.hit(str(user.id))
        # The openid makes WeChat check that the code is this account's person's (a code copied from someone
        # else's phone is refused). The button lives in the mini-program, so a caller without that login (a
        # token of the mobile app, say) has no business with it, and without the openid the check is gone.
        method = await self.users.miniprogram_session_key(user.id, app.appid)
        if method is None:
            raise BadRequest("phone binding needs a login through this mini-program")
        openid = method.openid
        code_hash = hashlib.sha256(f"{app.appid}\n{code}".encode()).digest()
        claim = await self.phones.claim_code(code_hash, user.id)
        if not claim.fresh:
            return await self._repeat(claim, user)
        try:
            number = await self.app_tokens.call(
                app, lambda token: self.wechat.phone_number(token, app.appid, code, openid))
        except WxLoginError as exc:
            # Whatever happened, the code was (or may have been) sent: its repeats get this error's code.
            with contextlib.suppress(DatabaseUnavailable, Overloaded):
                await self.phones.finish_code(code_hash, exc.code)
            raise
        try:
            bound = await self.phones.bind(user.id, number, context, code_hash)
        except PhoneInUse:
            logger.info("phone bind refused for user %d: the number belongs to another account", user.id)
            with contextlib.suppress(DatabaseUnavailable, Overloaded):
                await self.phones.record_conflict(user.id, context, code_hash)
            raise
        logger.info("phone bound to user %d", user.id)
        return bound

    async def _repeat(self, claim: CodeClaim, user: User) -> BoundPhone:
        """A code this site has sent already: its first outcome, without asking WeChat again."""
        if claim.user_id != user.id:
            raise PhoneCodeInvalid("another account's code")  # says nothing of what became of it
        if claim.outcome == PhoneInUse.code:
            raise PhoneInUse()
        if claim.outcome == "ok":
            bound = await self.phones.get(user.id)
            if bound is not None:
                return bound
        raise PhoneCodeInvalid(f"code already sent ({claim.outcome})")

    async def unbind(self, user_id: int, context: RequestContext) -> bool:
        """Remove the account's number (recorded in the audit trail); False if it had none."""
        removed = await self.phones.unbind(user_id, context)
        if removed:
            logger.info("phone unbound from user %d", user_id)
        return removed
