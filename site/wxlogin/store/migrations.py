"""Versioned schema migrations, applied in order at start-up, by `make run` and by `make test`.

Each migration runs once and is recorded in ``schema_migrations``; statements use IF NOT EXISTS (or, for
an index added to an existing table, count "already there" as done) so a migration interrupted half-way
can simply run again. ``GET_LOCK`` keeps several processes starting at
once from migrating concurrently. ID columns are ascii_bin: WeChat IDs are case-sensitive and an
accent- or case-insensitive collation would log one person into another's account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiomysql
import pymysql

from wxlogin.config import MySQLSettings
from wxlogin.errors import DatabaseUnavailable
from wxlogin.store.db import Database, error_number
from wxlogin.store.rows import fetchall, fetchone

logger = logging.getLogger(__name__)

_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
_ID = "CHARACTER SET ascii COLLATE ascii_bin"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users, login methods, login events, consumed OAuth states, revoked sessions",
        (
            f"""CREATE TABLE IF NOT EXISTS users (
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                unionid VARCHAR(64) {_ID} NULL,
                nickname VARCHAR(100) NOT NULL DEFAULT '',
                avatar_url VARCHAR(1024) NOT NULL DEFAULT '',
                profile_is_placeholder TINYINT(1) NOT NULL DEFAULT 0,
                session_version INT UNSIGNED NOT NULL DEFAULT 1,
                disabled TINYINT(1) NOT NULL DEFAULT 0,
                created_at DATETIME(3) NOT NULL,
                last_login_at DATETIME(3) NULL,
                UNIQUE KEY uq_users_unionid (unionid)
            ) {_TABLE_OPTIONS}""",
            f"""CREATE TABLE IF NOT EXISTS user_login_methods (
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                user_id BIGINT UNSIGNED NOT NULL,
                login_method VARCHAR(16) {_ID} NOT NULL,
                appid VARCHAR(32) {_ID} NOT NULL,
                openid VARCHAR(64) {_ID} NOT NULL,
                unionid VARCHAR(64) {_ID} NULL,
                created_at DATETIME(3) NOT NULL,
                last_login_at DATETIME(3) NULL,
                scope VARCHAR(64) {_ID} NULL,
                access_token_enc VARBINARY(1024) NULL,
                refresh_token_enc VARBINARY(1024) NULL,
                access_token_expires_at DATETIME(3) NULL,
                session_key_enc VARBINARY(256) NULL,
                UNIQUE KEY uq_login_methods_appid_openid (appid, openid),
                KEY ix_login_methods_unionid (unionid),
                KEY ix_login_methods_user (user_id),
                CONSTRAINT fk_login_methods_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
            ) {_TABLE_OPTIONS}""",
            f"""CREATE TABLE IF NOT EXISTS login_events (
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                user_id BIGINT UNSIGNED NULL,
                login_method VARCHAR(16) {_ID} NOT NULL,
                outcome VARCHAR(32) {_ID} NOT NULL,
                ip VARCHAR(45) {_ID} NOT NULL DEFAULT '',
                user_agent VARCHAR(255) NOT NULL DEFAULT '',
                created_at DATETIME(3) NOT NULL,
                KEY ix_login_events_user (user_id, created_at)
            ) {_TABLE_OPTIONS}""",
            f"""CREATE TABLE IF NOT EXISTS oauth_callbacks (
                nonce CHAR(32) {_ID} NOT NULL PRIMARY KEY,
                code_hash BINARY(32) NOT NULL,
                user_id BIGINT UNSIGNED NULL,
                status VARCHAR(8) {_ID} NOT NULL DEFAULT 'pending',
                created_at DATETIME(3) NOT NULL,
                KEY ix_oauth_callbacks_created (created_at)
            ) {_TABLE_OPTIONS}""",
            f"""CREATE TABLE IF NOT EXISTS revoked_sessions (
                sid CHAR(22) {_ID} NOT NULL PRIMARY KEY,
                expires_at DATETIME(3) NOT NULL,
                KEY ix_revoked_sessions_expires (expires_at)
            ) {_TABLE_OPTIONS}""",
        ),
    ),
    Migration(
        2,
        "shared rate-limit buckets; login events by age (retention purge)",
        (
            # One row per (bucket, client): see store/ratelimits.py. The subject is bytes (an IP or a
            # token id), so nothing a proxy forwards can fail a charset check.
            f"""CREATE TABLE IF NOT EXISTS rate_limits (
                bucket VARCHAR(16) {_ID} NOT NULL,
                subject VARBINARY(64) NOT NULL,
                tat_ms BIGINT NOT NULL,
                hits BIGINT UNSIGNED NOT NULL,
                PRIMARY KEY (bucket, subject),
                KEY ix_rate_limits_tat (tat_ms)
            ) {_TABLE_OPTIONS}""",
            # The retention purge deletes by age; without this index every batch would scan the table.
            "ALTER TABLE login_events ADD KEY ix_login_events_created (created_at)",
        ),
    ),
    Migration(
        3,
        "pending merges (bound to a merge flow's state nonce); identities unlinked from an account",
        (
            # A merge waits here, keyed by the nonce of the merge flow's state, until the browser that
            # started it comes back with a fresh WeChat confirmation of the account merged away. The
            # ids never travel through WeChat; the row dies with either account.
            f"""CREATE TABLE IF NOT EXISTS pending_merges (
                nonce CHAR(32) {_ID} NOT NULL PRIMARY KEY,
                into_user_id BIGINT UNSIGNED NOT NULL,
                from_user_id BIGINT UNSIGNED NOT NULL,
                created_at DATETIME(3) NOT NULL,
                KEY ix_pending_merges_created (created_at),
                KEY ix_pending_merges_into (into_user_id),
                KEY ix_pending_merges_from (from_user_id),
                CONSTRAINT fk_pending_merges_into FOREIGN KEY (into_user_id) REFERENCES users (id) ON DELETE CASCADE,
                CONSTRAINT fk_pending_merges_from FOREIGN KEY (from_user_id) REFERENCES users (id) ON DELETE CASCADE
            ) {_TABLE_OPTIONS}""",
            # The person removed this WeChat identity from this account: its next login must not find
            # the account again through the unionid (users.py, login-or-register).
            f"""CREATE TABLE IF NOT EXISTS unlinked_identities (
                appid VARCHAR(32) {_ID} NOT NULL,
                openid VARCHAR(64) {_ID} NOT NULL,
                user_id BIGINT UNSIGNED NOT NULL,
                unlinked_at DATETIME(3) NOT NULL,
                PRIMARY KEY (appid, openid, user_id),
                KEY ix_unlinked_identities_user (user_id),
                CONSTRAINT fk_unlinked_identities_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
            ) {_TABLE_OPTIONS}""",
        ),
    ),
    Migration(
        4,
        "the app access token of each appid, shared by every process (store/apptokens.py)",
        (
            # One row per appid. token_enc is the token sealed with TokenCipher (WeChat asks for room for
            # at least 512 characters). The lease is the refresher's claim (one process at a time refreshes);
            # forced_* count force_refresh calls against WeChat's limits (20 a China day, 30 s apart).
            f"""CREATE TABLE IF NOT EXISTS app_tokens (
                appid VARCHAR(32) {_ID} NOT NULL PRIMARY KEY,
                token_enc VARBINARY(2048) NULL,
                expires_at DATETIME(3) NULL,
                fetched_at DATETIME(3) NULL,
                lease_id CHAR(22) {_ID} NULL,
                lease_until DATETIME(3) NULL,
                forced_at DATETIME(3) NULL,
                forced_day DATE NULL,
                forced_count INT UNSIGNED NOT NULL DEFAULT 0
            ) {_TABLE_OPTIONS}""",
        ),
    ),
    Migration(
        5,
        "WeChat event pushes already taken (deduplication of WeChat's retries)",
        (
            # dedupe_key: SHA-256 of the app and WeChat's identity of the message (store/pushes.py), so no
            # openid is kept; event only says what the row was, for whoever reads the table.
            f"""CREATE TABLE IF NOT EXISTS wechat_pushes (
                dedupe_key BINARY(32) NOT NULL PRIMARY KEY,
                appid VARCHAR(32) {_ID} NOT NULL,
                event VARCHAR(64) NOT NULL DEFAULT '',
                created_at DATETIME(3) NOT NULL,
                KEY ix_wechat_pushes_created (created_at)
            ) {_TABLE_OPTIONS}""",
        ),
    ),
    Migration(
        6,
        "phone numbers bound to accounts; getPhoneNumber codes already sent to WeChat",
        (
            # One number per account, one account per number: UNIQUE(phone) decides a race of two accounts
            # on one number (one INSERT wins, the other is phone_in_use). phone is E.164 ("+" and at most 15
            # digits), country_code its first digits, kept apart so it can be masked without a numbering plan.
            # Personal data: stored plainly (it must be unique and shown masked), never logged.
            f"""CREATE TABLE IF NOT EXISTS user_phones (
                user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
                phone VARCHAR(16) {_ID} NOT NULL,
                country_code VARCHAR(4) {_ID} NOT NULL,
                bound_at DATETIME(3) NOT NULL,
                UNIQUE KEY uq_user_phones_phone (phone),
                CONSTRAINT fk_user_phones_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
            ) {_TABLE_OPTIONS}""",
            # Each getPhoneNumber code is claimed here before it goes to WeChat (each success costs money):
            # a repeat gets the first outcome, never a second paid call. code_hash is SHA-256 of the appid and
            # the code (no code is kept); rows go after 10 minutes (a code lives 5).
            f"""CREATE TABLE IF NOT EXISTS phone_codes (
                code_hash BINARY(32) NOT NULL PRIMARY KEY,
                user_id BIGINT UNSIGNED NOT NULL,
                outcome VARCHAR(32) {_ID} NOT NULL DEFAULT 'pending',
                created_at DATETIME(3) NOT NULL,
                KEY ix_phone_codes_created (created_at)
            ) {_TABLE_OPTIONS}""",
        ),
    ),
    Migration(
        7,
        "profile fill-in: avatars (content-addressed images), their pending WeChat checks, review flags",
        (
            # For operators: a nickname stored although WeChat's check said "review"; the avatar (its
            # SHA-256) that WeChat sent to review, kept but not shown (store/profiles.py).
            "ALTER TABLE users ADD COLUMN nickname_review TINYINT(1) NOT NULL DEFAULT 0",
            f"ALTER TABLE users ADD COLUMN avatar_review CHAR(64) {_ID} NULL",
            # The re-encoded avatar (a 256x256 JPEG, a few tens of KiB), keyed by the SHA-256 of its bytes, so
            # every process and machine serves it. status: pending (WeChat has not answered; served only to
            # the holder of fetch_key, i.e. WeChat's fetcher), pass (served to all, cached for a year), review.
            f"""CREATE TABLE IF NOT EXISTS avatars (
                sha256 CHAR(64) {_ID} NOT NULL PRIMARY KEY,
                image MEDIUMBLOB NOT NULL,
                status VARCHAR(8) {_ID} NOT NULL DEFAULT 'pending',
                fetch_key CHAR(32) {_ID} NOT NULL,
                created_at DATETIME(3) NOT NULL,
                KEY ix_avatars_status_created (status, created_at)
            ) {_TABLE_OPTIONS}""",
            # One row per media_check_async call whose verdict has not arrived: trace_id -> (user, avatar).
            # The newest row of a user wins; older ones are superseded (their verdicts change nothing).
            f"""CREATE TABLE IF NOT EXISTS avatar_checks (
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                trace_id VARCHAR(128) {_ID} NOT NULL,
                user_id BIGINT UNSIGNED NOT NULL,
                sha256 CHAR(64) {_ID} NOT NULL,
                created_at DATETIME(3) NOT NULL,
                UNIQUE KEY uq_avatar_checks_trace (trace_id),
                KEY ix_avatar_checks_user (user_id),
                KEY ix_avatar_checks_sha (sha256),
                KEY ix_avatar_checks_created (created_at),
                CONSTRAINT fk_avatar_checks_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
            ) {_TABLE_OPTIONS}""",
        ),
    ),
    Migration(
        8,
        "desktop scan-login scenes (scan to follow, mini-program code)",
        (
            # One row per scene shown on a desktop login page (services/scenes.py). scene: 32 random letters and
            # digits (WeChat's scene_str and getwxacodeunlimit's scene both take them). binding: SHA-256 of the
            # secret in the browser's HttpOnly cookie, so only that browser can follow or complete it. user_id
            # is set by the phone's confirmation and never leaves the server. Rows go an hour after expiry.
            f"""CREATE TABLE IF NOT EXISTS login_scenes (
                scene CHAR(32) {_ID} NOT NULL PRIMARY KEY,
                kind VARCHAR(16) {_ID} NOT NULL,
                binding BINARY(32) NOT NULL,
                status VARCHAR(16) {_ID} NOT NULL DEFAULT 'waiting',
                user_id BIGINT UNSIGNED NULL,
                next_path VARCHAR(512) {_ID} NOT NULL DEFAULT '/',
                created_at DATETIME(3) NOT NULL,
                expires_at DATETIME(3) NOT NULL,
                KEY ix_login_scenes_expires (expires_at),
                CONSTRAINT fk_login_scenes_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
            ) {_TABLE_OPTIONS}""",
        ),
    ),
    Migration(
        9,
        "mini-program code login: each scene's code image and the account that opened it first",
        (
            # One row per mini-program scene (issue 14), for the scene's life (expires_at is the scene's; the
            # 10-minute purge removes it after). image: the code getwxacodeunlimit drew, so every process and
            # machine serves it without asking WeChat again (a quota). owner_id: the account whose mini-program
            # acted on the scene first; only it may confirm or refuse (a second phone that scans a photo of the
            # code gets scene_used). The scene is random and shown in the code: nothing here is a secret.
            f"""CREATE TABLE IF NOT EXISTS wxa_scenes (
                scene CHAR(32) {_ID} NOT NULL PRIMARY KEY,
                content_type VARCHAR(16) {_ID} NULL,
                image MEDIUMBLOB NULL,
                owner_id BIGINT UNSIGNED NULL,
                expires_at DATETIME(3) NOT NULL,
                KEY ix_wxa_scenes_expires (expires_at)
            ) {_TABLE_OPTIONS}""",
        ),
    ),
    Migration(
        10,
        "closing an account (注销): when each closed account is due to be deleted",
        (
            # NULL: the account is not closing. Otherwise the moment the deletion job may delete it (closed at
            # + [accounts] deletion_grace_days); signing in before then offers to cancel (services/deletion.py).
            # On users, not a table of its own: every session check already reads the row, so a pending
            # account is known on every request and login answer without another query.
            "ALTER TABLE users ADD COLUMN deletion_scheduled_at DATETIME(3) NULL",
            # The job asks for the accounts that are due, and the metrics for how many are pending.
            "ALTER TABLE users ADD KEY ix_users_deletion (deletion_scheduled_at)",
        ),
    ),
    Migration(
        11,
        "operator console: WeChat's errcode and rid on failed logins; the operator audit log",
        (
            # What WeChat said when a login failed (issue 16): its errcode and the rid its support asks for.
            # NULL for failures that were not WeChat's answer (a cancel, a bad state, a disabled account).
            "ALTER TABLE login_events ADD COLUMN wechat_errcode INT NULL",
            f"ALTER TABLE login_events ADD COLUMN wechat_rid VARCHAR(64) {_ID} NULL",
            # The console's "failed logins from this address" (store/admin.py); by time alone it uses
            # ix_login_events_created.
            "ALTER TABLE login_events ADD KEY ix_login_events_ip (ip, created_at)",
            # The console's search by openid (the unique key leads with appid, which an operator rarely has).
            "ALTER TABLE user_login_methods ADD KEY ix_login_methods_openid (openid)",
            # One row per operator action (store/admin.py). No foreign keys: the log outlives the accounts it
            # names (an operator's own account, or a deleted person's, going away must not erase what was done).
            f"""CREATE TABLE IF NOT EXISTS operator_actions (
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                operator_id BIGINT UNSIGNED NOT NULL,
                action VARCHAR(32) {_ID} NOT NULL,
                target_user_id BIGINT UNSIGNED NULL,
                detail VARCHAR(255) NOT NULL DEFAULT '',
                created_at DATETIME(3) NOT NULL,
                KEY ix_operator_actions_target (target_user_id, created_at),
                KEY ix_operator_actions_created (created_at)
            ) {_TABLE_OPTIONS}""",
        ),
    ),
)

TABLES = ("app_tokens", "avatar_checks", "avatars", "login_events", "login_scenes", "oauth_callbacks",
          "operator_actions", "pending_merges", "phone_codes", "rate_limits", "revoked_sessions",
          "unlinked_identities", "user_login_methods", "user_phones", "users", "wechat_pushes", "wxa_scenes")
# "Duplicate key name" / "Duplicate column name": an index or column a half-applied migration already added
# (MySQL 8 has neither ADD KEY IF NOT EXISTS nor ADD COLUMN IF NOT EXISTS).
_ER_DUP_KEYNAME = 1061
_ER_DUP_FIELDNAME = 1060


async def create_database(settings: MySQLSettings) -> None:
    """Create the configured database if it does not exist yet (utf8mb4)."""
    conn = await _connect(settings, with_database=False)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                f"CREATE DATABASE IF NOT EXISTS `{settings.database}` "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    finally:
        conn.close()


async def migrate(settings: MySQLSettings) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied now."""
    conn = await _connect(settings, with_database=True)
    applied_now: list[int] = []
    try:
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION sql_notes = 0")  # "already exists" notes are expected here
            await cur.execute("SELECT GET_LOCK('wxlogin.migrate', 60) AS locked")
            lock = await fetchone(cur)
            if lock is None or lock["locked"] != 1:  # 0: another process held it 60 s; NULL: an error
                raise DatabaseUnavailable("migration lock")
            try:
                await cur.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INT NOT NULL PRIMARY KEY, "
                    f"name VARCHAR(200) NOT NULL, applied_at DATETIME(3) NOT NULL) {_TABLE_OPTIONS}"
                )
                await cur.execute("SELECT version FROM schema_migrations")
                done = {row["version"] for row in await fetchall(cur)}
                for migration in MIGRATIONS:
                    if migration.version in done:
                        continue
                    for statement in migration.statements:
                        try:
                            await cur.execute(statement)
                        except pymysql.err.MySQLError as exc:
                            if error_number(exc) not in (_ER_DUP_KEYNAME, _ER_DUP_FIELDNAME):
                                raise
                    await cur.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, UTC_TIMESTAMP(3))",
                        (migration.version, migration.name),
                    )
                    applied_now.append(migration.version)
                    logger.info("applied migration %d: %s", migration.version, migration.name)
            finally:
                await cur.execute("SELECT RELEASE_LOCK('wxlogin.migrate')")
    finally:
        conn.close()
    return applied_now


async def _connect(settings: MySQLSettings, with_database: bool) -> aiomysql.Connection:
    try:
        return await aiomysql.connect(**Database(settings).connect_kwargs(with_database=with_database))
    except (OSError, pymysql.err.MySQLError) as exc:
        raise DatabaseUnavailable(f"connect: {type(exc).__name__} {getattr(exc, 'args', ('',))[0]}") from None
