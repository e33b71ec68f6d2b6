"""The seed-style peer: what the blog posts build (Flask + gunicorn sync workers + PyMySQL + urllib).

One request = code -> access_token -> userinfo (urllib, blocking) -> select or insert the user and
its login method (a new PyMySQL connection, as the posts do) -> a Flask session cookie. It exists
only as the benchmark's reference; run by bench/run.py as `gunicorn -w 4 bench.peer.app:app`.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request

import pymysql
from flask import Flask, redirect, request, session

app = Flask(__name__)
app.secret_key = os.environ.get("PEER_SECRET", "peer-bench-secret")
WECHAT = os.environ.get("PEER_WECHAT", "http://127.0.0.1:18080")
APPID = os.environ.get("PEER_APPID", "wxa0b1c2d3e4f50001")
SECRET = os.environ.get("PEER_APPSECRET", "peer-secret")


def db() -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=int(os.environ.get("PEER_MYSQL_PORT", "3306")), user="root",
                           password="", database=os.environ.get("PEER_DATABASE", "wxlogin_peer"), charset="utf8mb4")


def wechat(path: str, params: dict[str, str]) -> dict:
    with urllib.request.urlopen(f"{WECHAT}{path}?{urllib.parse.urlencode(params)}", timeout=5) as response:
        return json.load(response)


@app.get("/callback")
def callback():
    token = wechat("/sns/oauth2/access_token", {"appid": APPID, "secret": SECRET, "code": request.args["code"],
                                                "grant_type": "authorization_code"})
    if "openid" not in token:
        return "login failed", 400
    info = wechat("/sns/userinfo", {"access_token": token["access_token"], "openid": token["openid"]})
    conn = db()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT user_id FROM login_methods WHERE appid = %s AND openid = %s", (APPID, info["openid"]))
            row = cur.fetchone()
            if row:
                user_id = row[0]
                cur.execute("UPDATE users SET nickname = %s, last_login_at = NOW() WHERE id = %s",
                            (info.get("nickname", ""), user_id))
            else:
                cur.execute("INSERT INTO users (unionid, nickname, created_at) VALUES (%s, %s, NOW())",
                            (info.get("unionid"), info.get("nickname", "")))
                user_id = cur.lastrowid
                cur.execute("INSERT INTO login_methods (user_id, appid, openid) VALUES (%s, %s, %s)",
                            (user_id, APPID, info["openid"]))
        conn.commit()
    finally:
        conn.close()
    session["uid"] = user_id
    session["at"] = int(time.time())
    return redirect("/")


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS users (id BIGINT AUTO_INCREMENT PRIMARY KEY, unionid VARCHAR(64) NULL UNIQUE, "
    "nickname VARCHAR(100) NOT NULL DEFAULT '', created_at DATETIME NOT NULL, last_login_at DATETIME NULL) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS login_methods (id BIGINT AUTO_INCREMENT PRIMARY KEY, user_id BIGINT NOT NULL, "
    "appid VARCHAR(32) NOT NULL, openid VARCHAR(64) NOT NULL, UNIQUE KEY (appid, openid)) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
)
