"""What a signed-in person can do to their account: unlink, merge (with proof), refresh the profile."""

from __future__ import annotations

import enum
import logging
from datetime import datetime, timezone

from wxlogin.config import Settings, WeChatApp
from wxlogin.errors import AccessTokenExpired, BadRequest, RefreshTokenExpired, ScopeUnauthorized
from wxlogin.models import Channel
from wxlogin.services.login import LoginService
from wxlogin.signing import Signing
from wxlogin.store import AccountStore, StoredGrant
from wxlogin.wechat.client import WeChatClient

logger = logging.getLogger(__name__)

_PROFILE_SCOPES = {"snsapi_userinfo", "snsapi_login"}


class RefreshOutcome(str, enum.Enum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REAUTHORIZE = "reauthorize"  # the refresh token is gone: the person must authorise again


class AccountService:
    """Account changes, each on the signed-in person's explicit request."""

    def __init__(self, settings: Settings, signing: Signing, accounts: AccountStore, wechat: WeChatClient,
                 login: LoginService) -> None:
        self.settings = settings
        self.signing = signing
        self.accounts = accounts
        self.wechat = wechat
        self.login = login

    async def unlink(self, user_id: int, method_id: int) -> None:
        await self.accounts.unlink(user_id, method_id)

    def merge_offer(self, into_user_id: int, from_user_id: int) -> str:
        """A signed, short-lived offer to merge; made only after the person proved the other identity."""
        return self.signing.dump_merge_offer(into_user_id, from_user_id)

    async def merge(self, user_id: int, offer: str) -> int:
        """Carry out a merge offer made to this user; returns how many login methods moved."""
        parsed = self.signing.load_merge_offer(offer)
        if parsed is None or parsed[0] != user_id or parsed[1] == user_id:
            raise BadRequest("merge offer invalid")
        return await self.accounts.merge(user_id, parsed[1])

    async def conflicts(self, user_id: int) -> list[int]:
        return await self.accounts.conflicting_accounts(user_id)

    async def refresh_profile(self, user_id: int) -> RefreshOutcome:
        """Re-read the profile from WeChat with the stored tokens, refreshing them when they expired."""
        grant = next((g for g in await self.accounts.grants(user_id) if set(g.scope.split(",")) & _PROFILE_SCOPES),
                     None)
        if grant is None:
            return RefreshOutcome.REAUTHORIZE
        access = self.login.cipher.decrypt(grant.access_token_enc)
        try:
            if access is None or await self._expired(grant, access):
                access = await self._renew(grant)
            try:
                info = await self.wechat.userinfo(access, grant.openid)
            except AccessTokenExpired:  # 42001: it expired since we checked
                info = await self.wechat.userinfo(await self._renew(grant), grant.openid)
        except (RefreshTokenExpired, ScopeUnauthorized):
            return RefreshOutcome.REAUTHORIZE
        changed = await self.accounts.update_profile(user_id, info.profile)
        return RefreshOutcome.UPDATED if changed else RefreshOutcome.UNCHANGED

    async def _expired(self, grant: StoredGrant, access: str) -> bool:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        if grant.access_token_expires_at is not None and grant.access_token_expires_at > now:
            return False
        return not await self.wechat.check_token(access, grant.openid)  # /sns/auth decides

    async def _renew(self, grant: StoredGrant) -> str:
        refresh = self.login.cipher.decrypt(grant.refresh_token_enc)
        if not refresh:
            raise RefreshTokenExpired()
        tokens = await self.wechat.refresh(self._app(grant), refresh)  # 40030/42002 -> RefreshTokenExpired
        await self.accounts.save_grant(grant.method_id, self.login.seal_tokens(tokens))
        return tokens.access_token

    def _app(self, grant: StoredGrant) -> WeChatApp:
        wx = self.settings.wechat
        return {Channel.WEB: wx.web, Channel.MP: wx.mp, Channel.APP: wx.app}.get(grant.channel, wx.web)
