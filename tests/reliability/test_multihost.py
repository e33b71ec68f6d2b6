"""Across machines: MariaDB on one host, two app hosts, nginx on a fourth (network namespaces, one bridge).

Each host is a Linux network namespace with its own address on a private bridge (tests/harness/netns.py);
the test's own namespace plays the outside world: the clients, and the one WeChat (the stand-in) that both
app hosts call. The app servers reach MariaDB at the database host's address; nginx runs the shipped site
(deploy/nginx/wxlogin.conf, its upstream block as shipped) in front of both app hosts.

- A desktop QR login started on host A (``/login`` and its state) finishes with WeChat's callback on host
  B, and the session works on A; a mini-program login on A gives a token that B accepts.
- Under continuous logins through nginx, host A's cable is pulled (nothing is shut down: its packets just
  stop). Logins go on through B: every login a client was told succeeded is in MySQL (its audit row, found
  by the login's own User-Agent), every failure a client saw is a retriable 502/503/504 around the cut and
  there are few of them, one user per person, and once the cable is back A serves again through nginx.

It skips, saying why, where network namespaces cannot be made (no root, no CAP_NET_ADMIN, a container).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import re
import secrets
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiomysql
import httpx
import pytest

from harness import DATABASE, mariadb, netns, nginx, scale
from harness.fakewechat import FakeWeChat, ids
from harness.figures import FIGURES, count_response
from harness.serverproc import ServerProcess, settings_for
from harness.web import session_set

APP_PORT = 8000
WEB_PORT = 8080
MYSQL_PORT = 3306
RETRIABLE = (502, 503, 504)
# MariaDB rolls back a transaction idle this long: deploy/README.md says 10 s; 5 keeps the test short.
IDLE_TRX = 5
# The shipped site's read timeout: a request A held that long is one nginx sent before it knew A was away.
READ_TIMEOUT = int(re.findall(r"proxy_read_timeout (\d+)s;", nginx.SHIPPED.read_text())[-1])


@dataclass
class Site:
    lab: netns.Lab
    url: str                      # nginx, as people reach it
    a: ServerProcess
    b: ServerProcess
    db: mariadb.PrivateMariaDB
    wechat: FakeWeChat
    settings: dict[str, Any]

    async def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self.db.query(query, args, db=DATABASE)

    def appid(self, kind: str) -> str:
        return str(self.settings["wechat"][kind]["appid"])


def _stop_quickly(server: ServerProcess) -> None:
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(5)
        except Exception:
            server.process.kill()


@pytest.fixture(scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    reason = netns.missing_reason()
    if reason:
        pytest.skip(f"multi-host test skipped: {reason}")
    if nginx.nginx_binary() is None:
        pytest.fail("nginx is not installed (make test installs nginx-light; or: apt-get install nginx-light)")
    if mariadb.missing_reason():
        pytest.fail(str(mariadb.missing_reason()))
    lab = netns.Lab()
    # A short path: MariaDB's Unix socket (how the test reaches it) must fit in 108 bytes.
    scratch = Path(tempfile.mkdtemp(prefix="wxmh"))
    workdir = tmp_path_factory.mktemp("multihost")
    started: list[Any] = []
    try:
        lab.up()
        db_host, a_host, b_host, web_host = (lab.add(name) for name in ("db", "appa", "appb", "web"))
        db = mariadb.PrivateMariaDB(scratch / "db", port=MYSQL_PORT, host=db_host.address,
                                    prefix=tuple(db_host.run([])), options=(f"--idle-transaction-timeout={IDLE_TRX}",))
        started.append(db)
        await db.start()
        await db.query(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4")
        wechat = FakeWeChat(host=lab.gateway, slow_seconds=3.0)
        await wechat.start()
        started.append(wechat)
        url = f"http://{web_host.address}:{WEB_PORT}"

        def app(host: netns.Host) -> ServerProcess:
            data = settings_for(MYSQL_PORT, DATABASE, {
                "server": {"host": host.address, "port": APP_PORT, "public_url": url},
                "mysql": {"host": db_host.address},
                # The shipped WeChat timeouts: the stand-in shares the event loop of a test that is busy.
                "wechat": {"sandbox": False, "open_base": wechat.url, "api_base": wechat.url},
                "ratelimit": {"trusted_proxies": [web_host.address]},
            })
            return ServerProcess(workdir / host.name, data, prefix=tuple(host.run([])))

        a, b = app(a_host), app(b_host)
        started += [a, b]
        await a.start()  # migrates first; B then finds the schema in place
        await b.start()
        # Test-only: which app host answered (the last address; a failover lists both).
        proc = nginx.start(scratch, WEB_PORT, [f"{a_host.address}:{APP_PORT}", f"{b_host.address}:{APP_PORT}"],
                           extra="add_header X-Upstream $upstream_addr always;", listen=web_host.address,
                           prefix=tuple(web_host.run([])))
        started.append(proc)
        await nginx.until_up(url)
        yield Site(lab, url, a, b, db, wechat, a.settings)
    finally:
        for thing in reversed(started):
            with contextlib.suppress(Exception):
                if isinstance(thing, ServerProcess):
                    _stop_quickly(thing)
                elif isinstance(thing, FakeWeChat):
                    await thing.close()
                elif isinstance(thing, mariadb.PrivateMariaDB):
                    await asyncio.wait_for(thing.stop(), 15)
                else:
                    thing.terminate()
                    thing.wait(5)
        lab.close()  # kills whatever is left in the namespaces, removes them and the bridge
        shutil.rmtree(scratch, ignore_errors=True)


def _cookie_header(response: httpx.Response) -> str:
    return "; ".join(f"{name}={value}" for name, value in response.cookies.items())


def _callback_of(wechat_url: str) -> tuple[str, str]:
    """From the URL of WeChat's QR (qrconnect): the callback path and query WeChat will send to, and the state."""
    query = parse_qs(urlsplit(wechat_url).query)
    callback = urlsplit(query["redirect_uri"][0])
    return f"{callback.path}?{callback.query}", query["state"][0]


def _qr_frame(page: httpx.Response) -> tuple[str, str]:
    """The login page's QR frame: the callback and the state (see ``_callback_of``)."""
    match = re.search(r'<iframe src="([^"]+)"', page.text)
    assert match and "qrconnect" in match.group(1), "the login page embeds WeChat's QR"
    return _callback_of(html.unescape(match.group(1)))


async def test_a_login_started_on_one_host_finishes_on_the_other(site: Site) -> None:
    tag = secrets.token_hex(3)
    async with httpx.AsyncClient(timeout=15, follow_redirects=False) as client:
        # Desktop QR: the login page and its state from host A; WeChat sends the browser's callback to B.
        page = await client.get(f"{site.a.url}/login", params={"next": "/account"})
        count_response(page.status_code)
        assert page.status_code == 200, page.text[:300]
        (callback, state), binding = _qr_frame(page), _cookie_header(page)
        assert "wxstate" in binding
        code = f"ok.qr{tag}.{secrets.token_hex(4)}"
        finish = f"{callback}&{urlencode({'code': code, 'state': state})}"
        done = await client.get(f"{site.b.url}{finish}", headers={"Cookie": binding})
        count_response(done.status_code)
        assert done.status_code == 302 and session_set(done), done.text[:300]
        session = {"Cookie": _cookie_header(done)}
        on_a = await client.get(f"{site.a.url}/account", headers=session)
        on_b = await client.get(f"{site.b.url}/account", headers=session)
        replay = await client.get(f"{site.a.url}{finish}", headers={"Cookie": binding})
        for answer in (on_a, on_b, replay):
            count_response(answer.status_code)
        assert on_a.status_code == 200 and on_b.status_code == 200, "a session minted on B works on A and on B"
        assert not session_set(replay), "the state B consumed is consumed for A too"

        # Mini-program: log in on A, use the token on B.
        api = await client.post(f"{site.a.url}/api/miniprogram/login", json={"code": f"ok.mp{tag}.x"})
        count_response(api.status_code)
        assert api.status_code == 200, api.text
        me = await client.get(f"{site.b.url}/api/me", headers={"Authorization": f"Bearer {api.json()['token']}"})
        count_response(me.status_code)
        assert me.status_code == 200 and me.json()["user"]["id"] == api.json()["user"]["id"]
    for person in (f"qr{tag}", f"mp{tag}"):
        _openid, unionid = ids(site.appid("web"), person, "ok")
        assert (await site.sql("SELECT COUNT(*) FROM users WHERE unionid = %s", unionid))[0][0] == 1
    assert "SANDBOX" not in site.a.log() + site.b.log()


@dataclass
class Login:
    n: int
    kind: str                 # "mp" (mini-program API) or "qr" (desktop: start, then WeChat's callback)
    person: str
    started: float
    ended: float = 0.0
    status: int = 0           # the failing step's status, or the last one; 0: the client gave up (a hang)
    step: float = 0.0         # when that step was sent
    upstream: str = ""        # nginx's $upstream_addr for the last step ("a, b" when it failed over)

    @property
    def ok(self) -> bool:
        return self.status in (200, 302)


@dataclass
class Traffic:
    """Logins through nginx by ``concurrency`` clients until stopped; each login has its own User-Agent."""

    url: str
    concurrency: int
    people: int
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    logins: list[Login] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def agent(self, n: int) -> str:
        return f"multihost/{self.tag}/{n}"

    async def run(self, clients: int, go: asyncio.Event | None = None) -> None:
        """``clients`` workers, made at once (an httpx client costs the event loop a TLS context, and the
        WeChat stand-in shares that loop), starting when ``go`` is set."""
        await asyncio.gather(*(self._worker(go) for _ in range(clients)))

    async def _worker(self, go: asyncio.Event | None) -> None:
        # The client waits longer than nginx (proxy_read_timeout 30 s): whatever happens, nginx answers first.
        async with httpx.AsyncClient(timeout=45, follow_redirects=False) as client:
            if go is not None:
                await go.wait()
            while not self.stop.is_set():
                n = next(self.counter)
                # People come back: the same person logs in again, on either host, during and after the cut.
                login = Login(n, "qr" if n % 2 else "mp", f"cut{self.tag}p{n % self.people}", time.monotonic())
                self.logins.append(login)
                headers = {"User-Agent": self.agent(n)}
                login.step = login.started
                try:
                    if login.kind == "mp":
                        answer = await client.post(f"{self.url}/api/miniprogram/login", headers=headers,
                                                   json={"code": f"ok.{login.person}.{secrets.token_hex(4)}"})
                        if answer.status_code == 200:
                            assert answer.json()["token"]
                    else:
                        client.cookies.clear()
                        answer = await client.get(f"{self.url}/auth/wechat/web", params={"next": "/"},
                                                  headers=headers)
                        count_response(answer.status_code)
                        if answer.status_code == 200:
                            answer.status_code = 298  # the start answers a redirect to WeChat, or fails
                        if answer.status_code == 302:
                            callback, state = _callback_of(answer.headers["location"])
                            code = f"ok.{login.person}.{secrets.token_hex(4)}"
                            login.step = time.monotonic()
                            answer = await client.get(f"{self.url}{callback}", headers=headers,
                                                      params={"code": code, "state": state})
                            if answer.status_code == 302 and not session_set(answer):
                                answer.status_code = 299  # a redirect without a session is not a login
                    login.status, login.upstream = answer.status_code, answer.headers.get("x-upstream", "")
                    count_response(answer.status_code)
                except httpx.HTTPError:
                    login.status = 0
                login.ended = time.monotonic()
                if not login.ok:
                    await asyncio.sleep(0.1)  # a client backing off before it tries again


async def _direct_login(server: ServerProcess) -> int:
    async with httpx.AsyncClient(timeout=15) as client:
        answer = await client.post(f"{server.url}/api/miniprogram/login",
                                   json={"code": f"ok.direct{secrets.token_hex(3)}.x"})
    count_response(answer.status_code)
    return answer.status_code


async def test_logins_go_on_through_the_other_host_when_one_is_cut_off(site: Site) -> None:
    a_host, a_addr = site.lab.hosts["appa"], f"{site.lab.hosts['appa'].address}:{APP_PORT}"
    traffic = Traffic(site.url, concurrency=scale(8, 16), people=scale(40, 200))
    warm, cut_for = scale(2, 5), scale(8, 40)  # long: past nginx's read timeout
    # New visitors keep coming: as many again from the cut on. Every kept-alive connection nginx has to A
    # holds the request it sends next until A is back (or proxy_read_timeout): as many as there were
    # clients, at most. The others show what everyone gets while A is away.
    newcomers = asyncio.Event()
    running = [asyncio.create_task(traffic.run(traffic.concurrency)),
               asyncio.create_task(traffic.run(traffic.concurrency, newcomers))]
    rejoined_at = cut_at = 0.0
    try:
        await asyncio.sleep(warm)
        assert any(login.ok and login.upstream.endswith(a_addr) for login in traffic.logins), "A served before"
        cut_at = time.monotonic()
        await asyncio.to_thread(site.lab.cut, a_host)  # the loop serves WeChat meanwhile
        FIGURES.faults_injected += 1
        newcomers.set()
        await asyncio.sleep(cut_for)
        await asyncio.to_thread(site.lab.rejoin, a_host)
        rejoined_at = time.monotonic()
        # A serves again: directly, and through nginx once nginx tries it again (fail_timeout).
        for _ in range(600):
            back = [login for login in traffic.logins
                    if login.ok and login.started > rejoined_at and login.upstream.endswith(a_addr)]
            if len(back) >= 3:
                break
            await asyncio.sleep(0.1)
        direct = await _direct_login(site.a)
    finally:
        await asyncio.to_thread(site.lab.rejoin, a_host)
        traffic.stop.set()
        newcomers.set()
        await asyncio.wait_for(asyncio.gather(*running), 60)
    logins = traffic.logins

    def held_by_a(lg: Login) -> bool:
        """Sent to A before the cut, or on a kept-alive connection after it: held until A came back, or until
        nginx's read timeout (then a GET goes on to B, a POST gets 504)."""
        return (lg.upstream.startswith(a_addr) and lg.step < rejoined_at
                and (lg.ended >= rejoined_at or lg.ended - lg.step >= READ_TIMEOUT))

    held = [lg for lg in logins if held_by_a(lg)]
    # Sent while A was away and answered before it came back: what people got from B alone.
    during = [lg for lg in logins if cut_at < lg.started and lg.ended < rejoined_at and not held_by_a(lg)]
    failures = [lg for lg in logins if not lg.ok]
    FIGURES.multihost_logins += len(logins)
    FIGURES.multihost_logins_during_cut += len(during)
    FIGURES.multihost_successes_during_cut += sum(lg.ok for lg in during)
    FIGURES.multihost_failures_at_cut += len(failures)
    FIGURES.multihost_held_by_the_cut_host += len(held)
    FIGURES.multihost_failovers += sum("," in lg.upstream for lg in logins)
    summary = (f"{len(logins)} logins, {sum(lg.ok for lg in logins)} succeeded, {len(during)} while A was cut "
               f"({sum(lg.ok for lg in during)} succeeded), {len(held)} held by A, failures: "
               f"{Counter((lg.status, round(lg.step - cut_at, 1), round(lg.ended - lg.step, 1)) for lg in failures)}, "
               f"cut for {rejoined_at - cut_at:.1f} s")
    print(summary)

    assert direct == 200, "the cut host serves again once its cable is back"
    assert len(back) >= 3, f"nginx sends logins to the rejoined host again; {summary}"
    assert during and all(lg.ok for lg in during), f"logins go on through B while A is cut off; {summary}"
    # Failures: only retriable answers, and only for requests that A held (sent before the cut, or on a
    # kept-alive connection nginx had to A). Any other failure is one nginx should have passed to B. No
    # more of them than there were clients before the cut (at most one per connection nginx had to A).
    assert all(lg.status in RETRIABLE for lg in failures), summary
    not_failed_over = [lg for lg in failures if not held_by_a(lg)]
    assert not not_failed_over, f"failed while B was there to answer: {not_failed_over}; {summary}"
    assert len(failures) <= traffic.concurrency, summary

    # Nothing lost: every login a client was told succeeded left its audit row, and its person one user.
    rows = await site.sql("SELECT user_agent, user_id FROM login_events WHERE user_agent LIKE %s "
                          "AND user_id IS NOT NULL", f"multihost/{traffic.tag}/%")
    recorded = {agent for agent, _user in rows}
    lost = [lg for lg in logins if lg.ok and traffic.agent(lg.n) not in recorded]
    FIGURES.logins_lost += len(lost)
    assert not lost, f"acknowledged logins missing in MySQL: {lost[:5]}"
    people = {lg.person for lg in logins if lg.ok}
    for person in people:
        _openid, unionid = ids(site.appid("web"), person, "ok")
        users = await site.sql("SELECT id FROM users WHERE unionid = %s", unionid)
        FIGURES.users_duplicated += max(0, len(users) - 1)
        assert len(users) == 1, f"{person}: {len(users)} users"
        for kind in ("web", "miniprogram"):
            openid, _unionid = ids(site.appid(kind), person, "ok")
            methods = await site.sql("SELECT DISTINCT user_id FROM user_login_methods WHERE appid = %s AND openid = %s",
                                     site.appid(kind), openid)
            assert len(methods) <= 1 and all(m[0] == users[0][0] for m in methods), f"{person} {kind}: {methods}"
    dupes = await site.sql("SELECT COUNT(*) FROM (SELECT unionid FROM users WHERE unionid IS NOT NULL "
                           "GROUP BY unionid HAVING COUNT(*) > 1) d")
    assert dupes[0][0] == 0



async def test_a_host_that_dies_inside_its_transaction_holds_its_locks_only_until_mysql_drops_it(site: Site) -> None:
    """A's login of person P is inside its transaction (P's rows locked) when A's cable is pulled.

    MySQL cannot tell a dead client from a slow one: without a limit the transaction stays open, P's rows
    locked, until TCP gives up on the connection (many minutes). The database host runs with
    ``idle_transaction_timeout`` (deploy/README.md), so MariaDB rolls it back, and P logs in through B.
    """
    a_host = site.lab.hosts["appa"]
    tag = secrets.token_hex(3)
    person = f"lock{tag}"
    answers: list[tuple[float, int, int, float]] = []  # (since the cut, P's status, a bystander's, seconds)
    async with httpx.AsyncClient(timeout=45) as client:
        first = await client.post(f"{site.b.url}/api/miniprogram/login", json={"code": f"ok.{person}.first"})
        count_response(first.status_code)
        assert first.status_code == 200
        # The test holds the audit table, so A's login waits inside its transaction, P's rows locked.
        locker = await aiomysql.connect(unix_socket=str(site.db.root / "mysqld.sock"), user="root", password="",
                                        db=DATABASE, autocommit=True)
        try:
            async with locker.cursor() as cur:
                await cur.execute("LOCK TABLES login_events WRITE")
                on_a = asyncio.create_task(client.post(f"{site.a.url}/api/miniprogram/login",
                                                       json={"code": f"ok.{person}.on-a"}))
                for _ in range(250):
                    await cur.execute("SELECT COUNT(*) FROM information_schema.processlist "
                                      "WHERE info LIKE 'INSERT INTO login_events%'")
                    if (await cur.fetchone())[0]:
                        break
                    await asyncio.sleep(0.02)
                else:
                    raise AssertionError("A's login never reached its audit row")
                site.lab.cut(a_host)
                FIGURES.faults_injected += 1
                cut_at = time.monotonic()
                await cur.execute("UNLOCK TABLES")  # A's statement finishes; A never hears, nor says COMMIT
        finally:
            locker.close()
        try:
            for i in range(60):
                started = time.monotonic()
                # Straight to B: what nginx does with a dead host is the test above; here it is MySQL's locks.
                mine = await client.post(f"{site.b.url}/api/miniprogram/login", json={"code": f"ok.{person}.{i}"})
                other = await client.post(f"{site.b.url}/api/miniprogram/login",
                                          json={"code": f"ok.by{tag}n{i}.{i}"})
                for answer in (mine, other):
                    count_response(answer.status_code)
                answers.append((started - cut_at, mine.status_code, other.status_code, time.monotonic() - started))
                if mine.status_code == 200:
                    break
                await asyncio.sleep(0.25)
        finally:
            site.lab.rejoin(a_host)
            on_a.cancel()
    summary = ", ".join(f"{t:.1f}s: P {p}, bystander {o} ({d:.1f}s)" for t, p, o, d in answers)
    print(summary)
    FIGURES.multihost_locked_out_s = max(FIGURES.multihost_locked_out_s, answers[-1][0])
    FIGURES.multihost_bystanders_failed_while_locked += sum(o != 200 for _t, _p, o, _d in answers)
    assert answers[-1][1] == 200, f"P logs in through B while A is still cut off; {summary}"
    assert all(p in (200, *RETRIABLE) and o in (200, *RETRIABLE) for _t, p, o, _d in answers), summary
    _openid, unionid = ids(site.appid("miniprogram"), person, "ok")
    assert (await site.sql("SELECT COUNT(*) FROM users WHERE unionid = %s", unionid))[0][0] == 1
