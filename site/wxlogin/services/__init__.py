"""Async services with no HTTP in them: login-or-register, sessions, the OAuth flows.

``build_services`` is the composition root shared by server.py and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from tornado.httpclient import AsyncHTTPClient

from wxlogin.config import Settings
from wxlogin.services.accounts import AccountService
from wxlogin.services.api import ApiService
from wxlogin.services.login import LoginService
from wxlogin.services.oauth import OAuthService
from wxlogin.services.sessions import SessionService
from wxlogin.signing import Signing
from wxlogin.store import AccountStore, CallbackStore, Database, EventStore, UserStore
from wxlogin.wechat.client import WeChatClient
from wxlogin.wechat.crypto import TokenCipher


@dataclass
class Services:
    settings: Settings
    db: Database
    signing: Signing
    wechat: WeChatClient
    users: UserStore
    events: EventStore
    sessions: SessionService
    login: LoginService
    oauth: OAuthService
    accounts: AccountService
    api: ApiService

    async def database_ready(self) -> bool:
        """True when MySQL answers a trivial query within the timeouts."""
        return await self.db.ping()

    async def close(self) -> None:
        """Release the pool and the HTTP client."""
        await self.db.close()
        self.wechat.close()


def build_services(settings: Settings, http: AsyncHTTPClient | None = None) -> Services:
    """Wire every service from settings (the pool opens lazily on first use)."""
    db = Database(settings.mysql)
    signing = Signing([k.value for k in settings.server.secret_keys])
    wechat = WeChatClient(settings.wechat, http)
    users = UserStore(db)
    events = EventStore(db)
    callbacks = CallbackStore(db)
    account_store = AccountStore(db)
    login = LoginService(users, events, TokenCipher(signing.encryption_keys))
    sessions = SessionService(settings.server, signing, users)
    oauth = OAuthService(settings, signing, wechat, login, callbacks, users, account_store)
    accounts = AccountService(settings, signing, account_store, wechat, login)
    api = ApiService(settings, signing, wechat, login, users, account_store, sessions)
    return Services(
        settings=settings, db=db, signing=signing, wechat=wechat, users=users, events=events,
        sessions=sessions, login=login, oauth=oauth, accounts=accounts, api=api,
    )
