"""Login-or-register as a service: encrypts what WeChat handed us, runs the store's transaction, audits."""

from __future__ import annotations

import contextlib
import logging

from wxlogin import metrics
from wxlogin.errors import DatabaseUnavailable, Overloaded, WeChatError
from wxlogin.models import (
    EncryptedGrant,
    LoginResult,
    RequestContext,
    User,
    WeChatAnswer,
    WeChatIdentity,
    WeChatProfile,
    WeChatTokens,
)
from wxlogin.store import EventStore, UserStore
from wxlogin.wechat.crypto import TokenCipher

logger = logging.getLogger(__name__)


class LoginService:
    """One door for every channel: the same person lands on the same account."""

    def __init__(self, users: UserStore, events: EventStore, cipher: TokenCipher) -> None:
        self.users = users
        self.events = events
        self.cipher = cipher

    def seal_tokens(self, tokens: WeChatTokens) -> EncryptedGrant:
        """Encrypt a WeChat OAuth grant for storage."""
        return EncryptedGrant(
            scope=tokens.scope,
            access_token_enc=self.cipher.encrypt(tokens.access_token),
            refresh_token_enc=self.cipher.encrypt(tokens.refresh_token) if tokens.refresh_token else None,
            access_token_expires_in=tokens.expires_in,
        )

    async def login(
        self,
        identity: WeChatIdentity,
        profile: WeChatProfile | None,
        context: RequestContext,
        grant: EncryptedGrant | None = None,
        callback_nonce: str | None = None,
        allow_create: bool = True,
    ) -> LoginResult:
        """Log the person in, creating their account on first sight."""
        result = await self.users.login_or_register(identity, profile, grant, context, callback_nonce, allow_create)
        # Counted after the commit (a rerun transaction counts once); failures are counted by record_failure.
        metrics.LOGINS.labels(identity.channel.value, "conflict" if result.conflict_user_id else "success").inc()
        logger.info(
            "login ok: user=%d channel=%s created=%s%s", result.user.id, identity.channel.value, result.created,
            f" unionid_conflict_with={result.conflict_user_id}" if result.conflict_user_id else "",
        )
        return result

    async def is_own(self, user: User, identity: WeChatIdentity) -> bool:
        """Whether a WeChat identity WeChat just confirmed is this account's (closing it, re-confirming).

        It is when the (appid, openid) is one of the account's login methods, or WeChat vouches for the same
        person through the unionid the account owns (the merge's rule, store/accounts.py).
        """
        if identity.unionid and identity.unionid == user.unionid:
            return True
        methods = await self.users.list_login_methods(user.id)
        return any(m.appid == identity.appid and m.openid == identity.openid for m in methods)

    async def record_failure(self, channel: str, outcome: str, context: RequestContext,
                             user_id: int | None = None, error: BaseException | None = None) -> None:
        """Audit a failed attempt; a database outage or a burst must not turn the failure page into a 503.

        ``user_id``: the signed-in person whose link or merge flow failed (their account page lists it), or the
        account a disabled person's attempt reached. ``error``: the failure; WeChat's errcode and rid are kept
        from it for the operator console (the errmsg is not: it may echo what we sent).
        """
        wechat = WeChatAnswer(error.errcode, error.rid) if isinstance(error, WeChatError) else None
        logger.info("login failed: channel=%s outcome=%s%s", channel, outcome,
                    f" errcode={wechat.errcode} rid={wechat.rid}" if wechat else "")
        metrics.LOGINS.labels(channel, outcome).inc()
        with contextlib.suppress(DatabaseUnavailable, Overloaded):
            await self.events.record_failure(channel, outcome, context, user_id, wechat)
