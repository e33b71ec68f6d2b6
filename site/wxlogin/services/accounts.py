"""What a signed-in person can do to their account: unlink, merge (with proof), refresh the profile."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from wxlogin.config import Settings, WeChatApp
from wxlogin.errors import (
    AccessTokenExpired,
    BadRequest,
    MergeNotConfirmed,
    MergeRefused,
    NotFound,
    RefreshTokenExpired,
    ScopeUnauthorized,
)
from wxlogin.models import BoundPhone, Channel, LoginEvent, LoginMethod, User, WeChatIdentity
from wxlogin.services.login import LoginService
from wxlogin.signing import Signing
from wxlogin.store import AccountStore, EventStore, StoredGrant, UserStore
from wxlogin.store.phones import PhoneStore
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
    phone: BoundPhone | None = None  # shown masked; bound from the mini-program


@dataclass(frozen=True)
class MergeProposal:
    """What a link ran into: the account that would disappear, the one that stays, and how to confirm.

    ``offer`` (signed, ten minutes, bound to the account that stays) only lets this browser *start*
    the merge confirmation; the merge itself needs a fresh WeChat confirmation of ``other``.
    """

    other: User  # merged away: deleted once the merge is confirmed
    other_methods: list[LoginMethod]
    stays: User  # the signed-in account
    stays_methods: list[LoginMethod]
    channel: Channel  # the WeChat login that ran into ``other``: the one to confirm with
    offer: str

    @property
    def refused(self) -> bool:
        """A disabled account on either side: no merge is offered."""
        return self.other.disabled or self.stays.disabled


_LINKABLE = (Channel.WEB, Channel.MP)  # the login methods a browser can attach


class AccountService:
    """Account changes, each on the signed-in person's explicit request, and what the account page shows."""

    def __init__(self, settings: Settings, signing: Signing, accounts: AccountStore, users: UserStore,
                 events: EventStore, wechat: WeChatClient, login: LoginService, phones: PhoneStore) -> None:
        self.settings = settings
        self.signing = signing
        self.accounts = accounts
        self.users = users
        self.events = events
        self.wechat = wechat
        self.login = login
        self.phones = phones

    async def overview(self, user_id: int, recent: int = 10) -> AccountOverview:
        methods = await self.users.list_login_methods(user_id)
        linked = {m.channel for m in methods}
        return AccountOverview(
            methods=methods,
            recent_events=await self.events.recent(user_id, limit=recent),
            conflicts=await self.accounts.conflicting_accounts(user_id),
            linkable=[c for c in _LINKABLE if c not in linked],
            can_unlink=len(methods) > 1,
            phone=await self.phones.get(user_id),
        )

    async def unlink(self, user_id: int, method_id: int) -> User:
        """Remove a login method and end every session and token of the person; returns the user as stored now.

        Tokens carry no method id, so ending them all is the only way to end the removed method's;
        the caller signs the current browser in again with the returned (new) session version.
        """
        await self.accounts.unlink(user_id, method_id)
        user = await self.users.get_user(user_id)
        if user is None:
            raise NotFound("account")
        return user

    def merge_offer(self, into_user_id: int, from_user_id: int) -> str:
        """A signed, short-lived offer to start a merge confirmation; made only when a link found a conflict."""
        return self.signing.dump_merge_offer(into_user_id, from_user_id)

    async def merge_proposal(self, into_user_id: int, from_user_id: int, channel: Channel) -> MergeProposal:
        """What the conflict page shows: the account that disappears, the one that stays, the signed offer."""
        other, stays = await self.users.get_user(from_user_id), await self.users.get_user(into_user_id)
        if other is None or stays is None:
            raise NotFound("the other account is gone")
        return MergeProposal(
            other=other, other_methods=await self.users.list_login_methods(from_user_id), stays=stays,
            stays_methods=await self.users.list_login_methods(into_user_id), channel=channel,
            offer=self.merge_offer(into_user_id, from_user_id),
        )

    async def begin_merge(self, user_id: int, offer: str, nonce: str) -> int:
        """Check a merge offer made to this user and keep it pending for the merge flow with this state nonce.

        Nothing merges here: only that flow's callback, proving the other account's WeChat again,
        does. Returns the id of the account that would be merged away.
        """
        parsed = self.signing.load_merge_offer(offer)
        if parsed is None or parsed[0] != user_id or parsed[1] == user_id:
            raise BadRequest("merge offer invalid")
        source = await self.users.get_user(parsed[1])
        target = await self.users.get_user(user_id)
        if source is None or target is None:
            raise NotFound("the other account is gone")
        if source.disabled or target.disabled:
            raise MergeRefused(f"user {source.id if source.disabled else target.id} is disabled")
        await self.accounts.add_pending_merge(nonce, user_id, source.id)
        return source.id

    async def pending_merge_for(self, nonce: str, user_id: int) -> int:
        """The account a merge flow would merge into ``user_id``; MergeNotConfirmed if there is none.

        Cheap, so the callback checks it before spending WeChat quota; ``confirm_merge`` checks again.
        """
        pending = await self.accounts.pending_merge(nonce)
        if pending is None or pending[0] != user_id:
            raise MergeNotConfirmed("no pending merge for this flow and person")
        return pending[1]

    async def confirm_merge(self, nonce: str, user_id: int, proof: WeChatIdentity) -> int:
        """Merge the pending account into ``user_id`` if ``proof`` (just confirmed in WeChat) is that account's.

        Returns how many login methods moved; raises MergeNotConfirmed or MergeRefused.
        """
        moved = await self.accounts.merge_confirmed(nonce, user_id, proof)
        logger.info("merge confirmed by the merged account's WeChat: into user %d, %d login methods", user_id, moved)
        return moved

    async def merge_as_operator(self, into_user_id: int, from_user_id: int) -> int:
        """An operator merges two accounts without the owner's proof (no route reaches this; a console will).

        Still never from or into a disabled account (MergeRefused). Returns how many login methods moved.
        """
        moved = await self.accounts.merge(into_user_id, from_user_id)
        logger.info("operator merged user %d into user %d", from_user_id, into_user_id)
        return moved

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
        app = self._app(grant)
        if app is None:
            raise RefreshTokenExpired()  # the app that issued it is no longer configured: authorise again
        tokens = await self.wechat.refresh(app, refresh)  # 40030/42002 -> RefreshTokenExpired
        await self.accounts.save_grant(grant.method_id, self.login.seal_tokens(tokens))
        return tokens.access_token

    def _app(self, grant: StoredGrant) -> WeChatApp | None:
        """The app that issued the tokens, by its appid (a further app of a kind refreshes with its own).

        None when no configured app has that appid any more: another app's secret must never refresh it.
        """
        found = self.settings.wechat.app_by_appid(grant.appid)
        return found.app if found is not None else None
