"""The purge keeps up with a hostile client: every backlog is cleared in one run, batch after batch, and
nothing younger than its retention goes."""

from __future__ import annotations


def numbers(count: int) -> str:
    """A derived table ``n`` of 0 .. count-1 (up to 10,000), for bulk inserts in one statement."""
    digits = "(SELECT 0 d UNION ALL " + " UNION ALL ".join(f"SELECT {i}" for i in range(1, 10)) + ")"
    return (f"(SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d AS n FROM {digits} a, {digits} b, {digits} c, "
            f"{digits} e) nums WHERE n < {count}")


async def fill(sql, old: int, young: int) -> None:
    """``old`` rows past their lifetime in every purged table, ``young`` rows just inside it."""
    for prefix, count, age in (("o", old, "2 HOUR"), ("y", young, "50 MINUTE")):
        await sql("INSERT INTO oauth_callbacks (nonce, code_hash, status, created_at) "
                  f"SELECT CONCAT('{prefix}', LPAD(n, 31, '0')), UNHEX(SHA2(n, 256)), 'ok', "
                  f"UTC_TIMESTAMP(3) - INTERVAL {age} FROM {numbers(count)}")
    for count, age in ((old, "181 DAY"), (young, "179 DAY"), (young, "0 DAY")):
        await sql("INSERT INTO login_events (login_method, outcome, ip, created_at) "
                  f"SELECT 'web', 'code_invalid', '192.0.2.1', UTC_TIMESTAMP(3) - INTERVAL {age} FROM {numbers(count)}")
    for prefix, count, expires in (("o", old, "- INTERVAL 1 MINUTE"), ("y", young, "+ INTERVAL 1 MINUTE")):
        await sql("INSERT INTO revoked_sessions (sid, expires_at) "
                  f"SELECT CONCAT('{prefix}', LPAD(n, 21, '0')), UTC_TIMESTAMP(3) {expires} FROM {numbers(count)}")
    for prefix, count, tat_ms in (("o", old, "0"), ("y", young, "9000000000000")):  # idle, and still counting
        await sql("INSERT INTO rate_limits (bucket, subject, tat_ms, hits) "
                  f"SELECT 'callback', CONCAT('{prefix}', n), {tat_ms}, 1 FROM {numbers(count)}")


async def test_a_backlog_larger_than_a_batch_is_cleared_in_one_run_and_young_rows_stay(server, sql):
    # 6,000 is above one batch of the purge (1,000) and above the old purge's 5,000 per table per run.
    await fill(sql, old=6000, young=7)

    removed = await server.services.maintenance.purge_expired()

    assert removed == 4 * 6000
    assert await sql("SELECT COUNT(*) FROM oauth_callbacks") == [(7,)], "states younger than an hour stay"
    assert await sql("SELECT COUNT(*) FROM login_events") == [(14,)], "events younger than 180 days stay"
    assert await sql("SELECT COUNT(*) FROM revoked_sessions") == [(7,)], "revocations of live sessions stay"
    assert await sql("SELECT COUNT(*) FROM rate_limits") == [(7,)], "buckets still counting stay"
    assert await server.services.maintenance.purge_expired() == 0


async def test_login_event_retention_is_configurable(start_server, sql):
    server = await start_server({"retention": {"login_events_days": 7}})
    for age in (8, 8, 6):
        await sql("INSERT INTO login_events (login_method, outcome, ip, created_at) "
                  f"VALUES ('web', 'ok', '192.0.2.1', UTC_TIMESTAMP(3) - INTERVAL {age} DAY)")

    await server.services.maintenance.purge_expired()

    assert await sql("SELECT COUNT(*) FROM login_events") == [(1,)]
