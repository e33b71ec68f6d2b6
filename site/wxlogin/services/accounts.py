"""What a signed-in person can do to their account: unlink, merge (with proof), refresh the profile."""

from __future__ import annotations

import enum
import ipaddress
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from wxlogin.config import Settings, WeChatApp
from wxlogin.errors import (
    AccessTokenExpired,
    BadRequest,
    LastLoginMethod,
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
from wxlogin.useragent import Device, Surface, describe_device, in_wechat
from wxlogin.wechat.client import WeChatClient

logger = logging.getLogger(__name__)

_PROFILE_SCOPES = {"snsapi_userinfo", "snsapi_login"}


class RefreshOutcome(enum.StrEnum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REAUTHORIZE = "reauthorize"  # the refresh token is gone: the person must authorise again


def to_local(moment: datetime, zone: tzinfo) -> datetime:
    """A stored time (naive UTC, as MySQL gives it back) in the site's zone, ``[server] time_zone``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone)


@dataclass(frozen=True)
class Place:
    """Where a sign-in came from, as coarse as we can honestly say without a GeoIP database.

    ``local``: a loopback or private address (this machine, the office or home network). Otherwise
    ``prefix``: the address's /24 (IPv4) or /48 (IPv6) network, which names the provider's block
    without pointing at one subscriber. Empty when the address was not recorded or is not an address.
    """

    local: bool
    prefix: str


def coarse_place(ip: str) -> Place:
    """The ``Place`` of a recorded client address (README, "The account page")."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return Place(local=False, prefix="")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback or address.is_private or address.is_link_local:
        return Place(local=True, prefix="")
    bits = 24 if address.version == 4 else 48
    return Place(local=False, prefix=str(ipaddress.ip_network(f"{address}/{bits}", strict=False)))


# Outcomes that are not failures: a login (one that found a unionid conflict still signed in) and the
# phone number's changes. Everything else in login_events is an error code (errors.py).
_SUCCEEDED = frozenset({"success", "conflict", "phone_bound", "phone_unbound"})


@dataclass(frozen=True)
class SignIn:
    """One row of the account page's history, ready to show."""

    at: datetime  # in the site's zone
    channel: str  # a Channel value, or "phone" for the phone number's changes
    outcome: str  # "success", a phone outcome, or the error code of a failure
    failed: bool
    device: Device
    place: Place

    @classmethod
    def of(cls, event: LoginEvent, zone: tzinfo) -> SignIn:
        return cls(at=to_local(event.created_at, zone), channel=event.channel, outcome=event.outcome,
                   failed=event.outcome not in _SUCCEEDED, device=describe_device(event.user_agent),
                   place=coarse_place(event.ip))


class Elsewhere(enum.StrEnum):
    """Where a link action works when it does not work here."""

    WECHAT = "wechat"  # the official account's authorisation runs only in WeChat's own browsers
    COMPUTER = "computer"  # a QR code needs a second screen: the phone scans the computer's


@dataclass(frozen=True)
class LinkAction:
    """A login method the person can still link, and whether it works on the surface they are on."""

    channel: Channel
    elsewhere: Elsewhere | None  # None: offer the button here

    @property
    def here(self) -> bool:
        return self.elsewhere is None


def link_works_here(channel: Channel, surface: Surface) -> Elsewhere | None:
    """None when linking ``channel`` works on ``surface``; otherwise where it would.

    The official account's web authorisation only runs inside WeChat (real WeChat answers "请在微信客户端打开
    链接" elsewhere). The website QR needs a phone to scan a screen: a computer's browser or desktop
    WeChat, never a phone's own screen (in WeChat or not), WeCom or the mini-program's web-view.
    """
    if channel is Channel.MP:
        return None if in_wechat(surface) else Elsewhere.WECHAT
    on_computer = surface in (Surface.DESKTOP, Surface.DESKTOP_WECHAT_MAC, Surface.DESKTOP_WECHAT_WINDOWS)
    return None if on_computer else Elsewhere.COMPUTER


@dataclass(frozen=True)
class AccountOverview:
    """Everything the account page shows about one person."""

    methods: list[LoginMethod]
    recent_events: list[SignIn]  # newest first, failures of their own link and merge flows included
    conflicts: list[int]  # accounts that share this person's unionid (made before linking existed)
    linkable: list[Channel]  # browser login channels not linked yet
    can_unlink: bool  # never the last login method
    phone: BoundPhone | None = None  # shown masked; bound from the mini-program
    link_actions: list[LinkAction] = field(default_factory=list)  # ``linkable``, decided for this surface
    # How to confirm a unionid conflict from here (the link flow that works here); None: open in WeChat.
    conflict_channel: Channel | None = None
    zone: tzinfo = UTC

    def local(self, moment: datetime) -> datetime:
        return to_local(moment, self.zone)


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
    zone: tzinfo = UTC  # the site's time zone, for the dates the page shows

    def local(self, moment: datetime) -> datetime:
        return to_local(moment, self.zone)

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

    async def overview(self, user_id: int, surface: Surface = Surface.DESKTOP, recent: int = 10) -> AccountOverview:
        """The account page's content, with the link actions decided for the ``surface`` the person is on."""
        methods = await self.users.list_login_methods(user_id)
        linked = {m.channel for m in methods}
        linkable = [c for c in _LINKABLE if c not in linked]
        zone = self.settings.server.zone
        # A conflict is confirmed by a link flow: the official account's in WeChat, else the QR where it works.
        conflict_channel = next((c for c in (Channel.MP, Channel.WEB) if link_works_here(c, surface) is None), None)
        return AccountOverview(
            methods=methods,
            recent_events=[SignIn.of(e, zone) for e in await self.events.recent(user_id, limit=recent)],
            conflicts=await self.accounts.conflicting_accounts(user_id),
            linkable=linkable,
            can_unlink=len(methods) > 1,
            phone=await self.phones.get(user_id),
            link_actions=[LinkAction(c, link_works_here(c, surface)) for c in linkable],
            conflict_channel=conflict_channel,
            zone=zone,
        )

    async def method_to_unlink(self, user_id: int, method_id: int) -> LoginMethod:
        """The person's login method that an unlink would remove, for its confirmation page.

        Raises what ``unlink`` would (NotFound, LastLoginMethod) so the page never asks to confirm
        something that cannot happen.
        """
        methods = await self.users.list_login_methods(user_id)
        method = next((m for m in methods if m.id == method_id), None)
        if method is None:
            raise NotFound("login method")
        if len(methods) <= 1:
            raise LastLoginMethod()
        return method

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
            offer=self.merge_offer(into_user_id, from_user_id), zone=self.settings.server.zone,
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
