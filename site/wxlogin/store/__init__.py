"""The only place SQL lives: the pool, migrations, and one module per table family."""

from wxlogin.store.accounts import AccountStore, StoredGrant
from wxlogin.store.callbacks import CallbackStore
from wxlogin.store.db import Database
from wxlogin.store.events import EventStore
from wxlogin.store.ratelimits import RateLimitStore
from wxlogin.store.users import UserStore

__all__ = [
    "AccountStore", "CallbackStore", "Database", "EventStore", "RateLimitStore", "StoredGrant", "UserStore",
]
