"""What handlers may use: the services and the settings, never a store, the pool or the WeChat client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from wxlogin.config import Settings
from wxlogin.services.accounts import AccountService
from wxlogin.services.admin import AdminService
from wxlogin.services.api import ApiService
from wxlogin.services.deletion import DeletionService
from wxlogin.services.follow import FollowLoginService
from wxlogin.services.maintenance import MaintenanceService
from wxlogin.services.oauth import OAuthService
from wxlogin.services.phones import PhoneService
from wxlogin.services.profile import ProfileService
from wxlogin.services.pushes import PushService
from wxlogin.services.scenes import SceneService
from wxlogin.services.sessions import SessionService
from wxlogin.services.wxacode import MiniProgramCodeService


@dataclass(frozen=True)
class Services:
    settings: Settings
    sessions: SessionService
    oauth: OAuthService
    accounts: AccountService
    api: ApiService
    maintenance: MaintenanceService
    pushes: PushService
    phones: PhoneService
    profile: ProfileService
    scenes: SceneService  # desktop scan-login scenes (issue 14): the waiting page, its QR, completion
    follow: FollowLoginService  # scan to follow the official account (issue 14): the follow QR of a scene
    wxacode: MiniProgramCodeService  # issue 14: mini-program codes for login scenes, the mini-program's steps
    admin: AdminService  # issue 16: the operator console (/admin)
    deletion: DeletionService  # issue 16: closing accounts (schedule, cancel, hasten), the deletion job, the export
    _close: Callable[[], Awaitable[None]] = field(repr=False)

    async def close(self) -> None:
        """Release the pool and the HTTP client."""
        await self._close()
