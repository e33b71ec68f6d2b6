"""What a signed-in person can do to their account: unlink, merge (with proof), refresh the profile."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from wxlogin.config import Settings, WeChatApp
from wxlogin.errors import AccessTokenExpired, BadRequest, NotFound, RefreshTokenExpired, ScopeUnauthorized
from wxlogin.models import Channel, LoginEvent, LoginMethod, User
from wxlogin.services.login import LoginService
from wxlogin.signing import Signing
from wxlogin.store import AccountStore, EventStore, StoredGrant, UserStore
from wxlogin.wechat.client import WeChatClient

logger = logging.getLogger(__name__)

_PROFILE_SCOPES = {"snsapi_userinfo", "snsapi_login"}


class RefreshOutcome(enum.StrEnum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REAUTHORIZE = "reauthorize"  # the refresh token is gone: the person must authorise again


@dataclass(frozen=True)
class AccountOverview:
    """Everything the account page shows about one person."""

    methods: list[LoginMethod]
    recent_events: list[LoginEvent]
    conflicts: list[int]  # accounts that share this person's unionid (made before linking existed)
    linkable: list[Channel]  # browser login channels not linked yet
    can_unlink: bool  # never the last login method


@dataclass(frozen=True)
class MergeProposal:
    """The other account a link ran into, and the signed offer that lets its owner merge it."""

    other: User
    other_methods: list[LoginMethod]
    offer: str


_LINKABLE = (Channel.WEB, Channel.MP)  # the login methods a browser can attach


class AccountService:
    """Account changes, each on the signed-in person's explicit request, and what the account page shows."""

    def __init__(self, settings: Settings, signing: Signing, accounts: AccountStore, users: UserStore,
                 events: EventStore, wechat: WeChatClient, login: LoginService) -> None:
        self.settings = settings
        self.signing = signing
        self.accounts = accounts
        self.users = users
        self.events = events
        self.wechat = wechat
        self.login = login

    async def overview(self, user_id: int, recent: int = 10) -> AccountOverview:
        methods = await self.users.list_login_methods(user_id)
        linked = {m.channel for m in methods}
        return AccountOverview(
            methods=methods,
            recent_events=await self.events.recent(user_id, limit=recent),
            conflicts=await self.accounts.conflicting_accounts(user_id),
            linkable=[c for c in _LINKABLE if c not in linked],
            can_unlink=len(methods) > 1,
        )

    async def unlink(self, user_id: int, method_id: int) -> None:
        await self.accounts.unlink(user_id, method_id)

    def merge_offer(self, into_user_id: int, from_user_id: int) -> str:
        """A signed, short-lived offer to merge; made only after the person proved the other identity."""
        return self.signing.dump_merge_offer(into_user_id, from_user_id)

    async def merge_proposal(self, into_user_id: int, from_user_id: int) -> MergeProposal:
        """What the conflict page shows: the other account, its login methods, and the signed offer."""
        other = await self.users.get_user(from_user_id)
        if other is None:
            raise NotFound("the other account is gone")
        return MergeProposal(other=other, other_methods=await self.users.list_login_methods(from_user_id),
                             offer=self.merge_offer(into_user_id, from_user_id))

    async def merge(self, user_id: int, offer: str) -> int:
        """Carry out a merge offer made to this user; returns how many login methods moved."""
        parsed = self.signing.load_merge_offer(offer)
        if parsed is None or parsed[0] != user_id or parsed[1] == user_id:
            raise BadRequest("merge offer invalid")
        return await self.accounts.merge(user_id, parsed[1])

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
        now = datetime.now(UTC).replace(tzinfo=None)
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
