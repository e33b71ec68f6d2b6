"""`python -m wxlogin.sandbox play`: play the mini-program (and the app) against a running server.

    python -m wxlogin.sandbox play --server http://127.0.0.1:8000 --person zhangsan [--client app] [--app shop]
        [--no-phone] [--nickname 新昵称] [--avatar plain|risky|review|none]

It asks the sandbox for what wx.login / the app's OpenSDK would hand the client, calls the login API,
and prints the token and /api/me. A mini-program then taps the getPhoneNumber button and binds the
number (``--no-phone`` skips it; 张三 and 李四 share a number: play one, then the other, to see
``phone_in_use``), and plays profile fill-in: the nickname input's value goes to
/api/miniprogram/nickname, the chooseAvatar image (``risky``/``review``: marked so that the sandbox's
check says so) is uploaded to /api/miniprogram/avatar like wx.uploadFile, and /api/me is read until
WeChat's verdict has arrived. ``--app`` plays a further app of the kind ([wechat.more.<kind>.<name>]).
A command-line tool, so plain blocking HTTP is fine here.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def call(method: str, url: str, body: dict[str, Any] | None = None, token: str = "",
         raw: tuple[bytes, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else raw[0] if raw is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", raw[1] if raw is not None else "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            answer = response.read()
            return response.status, json.loads(answer) if answer else None
    except urllib.error.HTTPError as error:
        refused: bytes = error.read()
        try:
            return error.code, json.loads(refused or b"null")
        except ValueError:  # the sandbox's own refusals are plain text ("SANDBOX: HTTP 400")
            return error.code, refused.decode("utf-8", "replace").strip()


def fetch_bytes(url: str, body: dict[str, Any]) -> bytes:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=15) as response:
        data: bytes = response.read()
        return data


def multipart(field: str, filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    """A body as wx.uploadFile sends it: one file part."""
    boundary = "----wxupload" + secrets.token_hex(8)
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n").encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def fill_in(server: str, sandbox: str, token: str, nickname: str, avatar: str) -> int:
    """The mini-program's profile fill-in: the nickname input, then the avatar button and wx.uploadFile."""
    if nickname:
        _, typed = call("POST", f"{sandbox}/dev/input.nickname", {"value": nickname})
        status, answer = call("POST", f"{server}/api/miniprogram/nickname", {"nickname": typed["detail"]["value"]},
                              token=token)
        print(f"POST /api/miniprogram/nickname -> {status}")
        print(json.dumps(answer, ensure_ascii=False, indent=2))
    if avatar == "none":
        return 0
    image = fetch_bytes(f"{sandbox}/dev/chooseAvatar", {"mark": "" if avatar == "plain" else avatar})
    status, answer = call("POST", f"{server}/api/miniprogram/avatar", token=token,
                          raw=multipart("file", "tmp_avatar.png", image, "image/png"))
    print(f"POST /api/miniprogram/avatar ({avatar} image, {len(image)} bytes) -> {status}")
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    if status != 200:
        return 1
    before = answer["user"]["avatar_url"]
    print("waiting for WeChat's verdict (the sandbox pushes it in about a second) ...")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.5)
        _, me = call("GET", f"{server}/api/me", token=token)
        if me["user"]["avatar_url"] != before:
            print(f"avatar now {me['user']['avatar_url']}")
            return 0
    print("avatar unchanged (a risky or review verdict keeps the old one; see the server log)")
    return 0


def play(server: str, person: str, client: str, app: str = "", phone: bool = True, nickname: str = "",
         avatar: str = "none") -> int:
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
    if status != 200:
        return 1
    if client == "miniprogram" and (nickname or avatar != "none"):
        return fill_in(server, sandbox, login["token"], nickname, avatar)
    return 0


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
    p.add_argument("--nickname", default="", help="mini-program: type this into the nickname input")
    p.add_argument("--avatar", choices=("plain", "risky", "review", "none"), default="none",
                   help="mini-program: choose an avatar (risky/review: marked for the sandbox's check) and upload it")
    args = parser.parse_args(argv)
    return play(args.server.rstrip("/"), args.person, args.client, args.app, phone=not args.no_phone,
                nickname=args.nickname, avatar=args.avatar)


if __name__ == "__main__":
    sys.exit(main())
