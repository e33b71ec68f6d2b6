"""Async services with no HTTP in them: login-or-register, sessions, the OAuth flows, the JSON API.

Handlers see only the ``Services`` container (services/container.py); ``build_services``
(services/wiring.py) is the composition root shared by server.py and the tests.
"""

from wxlogin.services.container import Services
from wxlogin.services.wiring import build_services

__all__ = ["Services", "build_services"]
