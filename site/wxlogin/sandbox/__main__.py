"""`python -m wxlogin.sandbox play`: play the mini-program (and the app) against a running server.

    python -m wxlogin.sandbox play --server http://127.0.0.1:8000 --person zhangsan [--client app] [--app shop]

It asks the sandbox for what wx.login / the app's OpenSDK would hand the client, calls the login API,
and prints the token and /api/me; a mini-program then taps the getPhoneNumber button and binds the
number (``--no-phone`` skips it). 张三 and 李四 share a number: play one, then the other, to see
``phone_in_use``. ``--app`` plays a further app of the kind ([wechat.more.<kind>.<name>]).
A command-line tool, so plain blocking HTTP is fine here.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any


def call(method: str, url: str, body: dict[str, Any] | None = None, token: str = "") -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw or b"null")
        except ValueError:  # the sandbox's own refusals are plain text ("SANDBOX: HTTP 400")
            return error.code, raw.decode("utf-8", "replace").strip()


def play(server: str, person: str, client: str, app: str = "", phone: bool = True) -> int:
    sandbox = server.rstrip("/") + "/_sandbox"
    which = {"app": app} if app else {}
    if client == "miniprogram":
        status, handed = call("POST", f"{sandbox}/dev/wx.login", {"person": person, **which})
        if status != 200:
            print(f"the sandbox refused wx.login ({status}); is [wechat] sandbox = true (and the app named)?",
                  file=sys.stderr)
            return 1
        status, login = call("POST", f"{server}/api/miniprogram/login", {**handed, **which})
    else:
        status, handed = call("POST", f"{sandbox}/dev/app.auth", {"person": person, **which})
        if status != 200:
            print(f"the sandbox refused the app's auth ({status})", file=sys.stderr)
            return 1
        status, login = call("POST", f"{server}/api/app/login", {"code": handed["code"], **which})
    print(f"POST /api/{client}/login -> {status}")
    print(json.dumps(login, ensure_ascii=False, indent=2))
    if status != 200:
        return 1
    if client == "miniprogram" and phone:
        # The getPhoneNumber button hands the mini-program a one-use code; the site asks WeChat for the number.
        status, button = call("POST", f"{sandbox}/dev/phone-code", {"person": person})
        if status == 200:
            status, bound = call("POST", f"{server}/api/miniprogram/phone", {"code": button["code"]},
                                 token=login["token"])
            print(f"POST /api/miniprogram/phone -> {status}")
            print(json.dumps(bound, ensure_ascii=False, indent=2))
    status, me = call("GET", f"{server}/api/me", token=login["token"])
    print(f"GET /api/me -> {status}")
    print(json.dumps(me, ensure_ascii=False, indent=2))
    return 0 if status == 200 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wxlogin.sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("play", help="log a test person in through the JSON API")
    p.add_argument("--server", default="http://127.0.0.1:8000")
    p.add_argument("--person", default="zhangsan", help="a sandbox person: zhangsan, panda, lisi, anon, ...")
    p.add_argument("--client", choices=("miniprogram", "app"), default="miniprogram")
    p.add_argument("--app", default="", help="a further app's name in [wechat.more.<client>.<name>]")
    p.add_argument("--no-phone", action="store_true", help="do not bind the phone number (mini-program)")
    args = parser.parse_args(argv)
    return play(args.server.rstrip("/"), args.person, args.client, args.app, phone=not args.no_phone)


if __name__ == "__main__":
    sys.exit(main())
