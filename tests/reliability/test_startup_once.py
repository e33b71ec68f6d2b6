"""`server.py --processes N` checks the schema once, in the parent, before forking: not once per worker.

MySQL is deliberately unreachable here, so every schema check leaves one warning line in the log: the
count of those lines is the count of checks.
"""

from __future__ import annotations

import asyncio

from harness.mariadb import free_port
from harness.serverproc import ServerProcess, settings_for

SCHEMA_CHECK = "could not check the schema at start-up"


async def test_processes_2_checks_the_schema_once_before_forking(tmp_path):
    nowhere = "http://127.0.0.1:9"  # never called: no login happens here
    data = settings_for(free_port(), "wxlogin_unreachable",
                        {"wechat": {"sandbox": False, "open_base": nowhere, "api_base": nowhere}})
    server = await ServerProcess(tmp_path, data, args=("--processes", "2")).start()
    try:
        for _ in range(200):  # bounded wait until both workers have announced themselves
            if server.log().count("serving http://") >= 2:
                break
            await asyncio.sleep(0.1)
        assert server.log().count("serving http://") == 2, server.log()
    finally:
        code = await server.stop()
    assert code == 0
    log = server.log()
    assert log.count(SCHEMA_CHECK) == 1, log
    assert log.index(SCHEMA_CHECK) < log.index("2 workers serving"), "the parent checks before it forks"
