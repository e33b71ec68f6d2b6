"""Housekeeping that no single request owns: the health probe and purging expired rows."""

from __future__ import annotations

from wxlogin.errors import DatabaseUnavailable
from wxlogin.store import Database, UserStore


class MaintenanceService:
    """Answers load balancers and keeps the tables of consumed states and revocations small."""

    def __init__(self, db: Database, users: UserStore) -> None:
        self.db = db
        self.users = users

    async def database_ready(self) -> bool:
        """True when MySQL answers a trivial query within the timeouts."""
        try:
            return await self.db.ping()
        except DatabaseUnavailable:
            return False

    async def purge_expired(self) -> int:
        """Delete consumed states and revocations past their lifetime; returns how many rows went."""
        return await self.users.purge_expired()
