"""Amplification: one cheap request must not buy many MySQL statements or time on the server.

WeChat's double callback makes a repeated callback wait for the first hit. Re-sending one's own
callback URL while the first hit is in flight (WeChat slow) used to poll MySQL every 0.1 s: hundreds
of such requests cost tens of thousands of statements and tripped the breaker for bystanders. The
wait now backs off, so each repeat costs a small, bounded number of statements.
"""

from __future__ import annotations

import asyncio
import secrets

from harness import scale
from harness.mariadb import PrivateMariaDB
from harness.serverproc import ServerProcess
from harness.web import counted_client, start_web_login, web_callback

STATEMENTS_PER_REPEAT = 10  # the claim, then about seven looks over the longest wait


async def _questions(db: PrivateMariaDB) -> int:
    rows = await db.query("SHOW GLOBAL STATUS LIKE 'Questions'")
    return int(rows[0][1])


async def test_repeated_callbacks_during_a_slow_first_hit_cost_few_statements(
    wx_server: ServerProcess, private_db: PrivateMariaDB
) -> None:
    base = wx_server.url
    repeats = scale(60, 300)
    async with counted_client() as bystander, counted_client() as attacker:
        # A signed-in bystander, to show the attack does not make the site answer 503 to others.
        state = await start_web_login(bystander, base)
        signed_in = await web_callback(bystander, base, f"ok.amp-bystander.{secrets.token_hex(4)}", state)
        assert signed_in.status_code == 302

        state = await start_web_login(attacker, base)
        code = f"slow.amp-attacker.{secrets.token_hex(4)}"  # WeChat takes longer than our timeout
        first = asyncio.create_task(web_callback(attacker, base, code, state))
        await asyncio.sleep(0.2)  # the first hit has claimed the state and is waiting on WeChat
        before = await _questions(private_db)
        flood = [asyncio.create_task(web_callback(attacker, base, code, state)) for _ in range(repeats)]
        await asyncio.sleep(0.5)
        account = await bystander.get(base + "/account")
        answers = await asyncio.gather(*flood)
        after = await _questions(private_db)
        await first

    assert account.status_code == 200, "a bystander was refused while the repeats waited"
    assert all(a.status_code < 500 for a in answers), sorted({a.status_code for a in answers})
    per_repeat = (after - before - 1) / repeats
    assert per_repeat <= STATEMENTS_PER_REPEAT, f"{per_repeat:.1f} statements per repeated callback"
