"""Domain errors with stable codes; handlers map them to HTTP (no statuses live here)."""

from __future__ import annotations


class WxLoginError(Exception):
    """Base of every expected failure; ``code`` is stable and shown to API clients."""

    code = "internal_error"
    # Seconds a client should wait before trying again (sent as Retry-After), or None: a fact of the
    # error, so whichever dialect answers (page or API) sends the same header.
    retry_after: int | None = None

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.code)
        self.detail = detail


class BadRequest(WxLoginError):
    code = "bad_request"


class DatabaseUnavailable(WxLoginError):
    """MySQL could not be reached in time; the request may be retried later."""

    code = "database_unavailable"


class Overloaded(WxLoginError):
    """More requests wait for MySQL than the queue admits, or one waited its whole time: busy, not down."""

    code = "overloaded"

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after


class StateInvalid(WxLoginError):
    """The OAuth ``state`` failed a check; ``reason`` says which (for logs, never for pages)."""

    code = "state_invalid"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StateExpired(StateInvalid):
    code = "state_expired"

    def __init__(self) -> None:
        super().__init__("expired")


class StateUnbound(StateInvalid):
    """The browser that returned is not the one that started the flow (binding cookie missing)."""

    code = "state_unbound"

    def __init__(self) -> None:
        super().__init__("unbound")


class StateReplayed(StateInvalid):
    code = "state_replayed"

    def __init__(self) -> None:
        super().__init__("replayed")


class LoginCancelled(WxLoginError):
    code = "login_cancelled"


class SnapshotUser(WxLoginError):
    """WeChat handed us a snapshot-page virtual person; nothing may be created for it."""

    code = "snapshot_user"


class AccountDisabled(WxLoginError):
    """An operator disabled the account; ``user_id`` when WeChat's answer already said whose it is."""

    code = "account_disabled"

    def __init__(self, detail: str = "", user_id: int | None = None) -> None:
        super().__init__(detail)
        self.user_id = user_id


class DeletionPending(WxLoginError):
    """The account is closing (注销, in its grace period): it may only restore, export and sign out."""

    code = "deletion_pending"


class ReauthRequired(WxLoginError):
    """The action needs a WeChat sign-in within ``[accounts] reauth_window`` and this session's is older."""

    code = "reauth_required"


class WrongAccount(WxLoginError):
    """A fresh WeChat confirmation (a code, a re-authorisation) came from a WeChat that is not this account's."""

    code = "wrong_account"


class LinkConflict(WxLoginError):
    """The WeChat identity being linked already belongs to another account."""

    code = "link_conflict"

    def __init__(self, other_user_id: int) -> None:
        super().__init__(f"identity belongs to user {other_user_id}")
        self.other_user_id = other_user_id


class LastLoginMethod(WxLoginError):
    code = "last_login_method"


class MergeRefused(WxLoginError):
    """A merge from or into a disabled account: refused whoever asks (a person or an operator)."""

    code = "merge_refused"


class MergeNotConfirmed(WxLoginError):
    """A merge confirmation that does not prove the owner of the account being merged away.

    The WeChat confirmed in the merge flow is not that account's, the pending merge is gone, or the
    browser is no longer signed in as the account that stays. Nothing was merged.
    """

    code = "merge_not_confirmed"


class InvalidToken(WxLoginError):
    """A bearer token that is missing, malformed, expired, revoked or for another purpose."""

    code = "invalid_token"


class RateLimited(WxLoginError):
    """The site's own limit on attempts; ``retry_after`` is in seconds."""

    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after


class NotFound(WxLoginError):
    code = "not_found"


class SceneNotFound(NotFound):
    """No such desktop scan-login scene, or not this browser's (the two look the same from outside)."""

    code = "scene_not_found"


class SceneExpired(WxLoginError):
    """The scene's QR code or mini-program code outlived its life before it was confirmed and used."""

    code = "scene_expired"


class ScenePending(WxLoginError):
    """The scene has not been confirmed on the phone (yet)."""

    code = "scene_pending"


class SceneRefused(WxLoginError):
    """The person refused the desktop login on the phone."""

    code = "scene_refused"


class SceneUsed(WxLoginError):
    """The scene already signed a browser in; a scene works once."""

    code = "scene_used"


class EncryptedDataInvalid(WxLoginError):
    """Any failure to decrypt or verify mini-program open data; deliberately carries no detail.

    Lives here, not in wechat/crypto.py, so handlers can name it without importing the crypto module.
    """

    code = "encrypted_data_invalid"


class PhoneInUse(WxLoginError):
    """The phone number is bound to another account: never moved silently (merging the accounts moves it)."""

    code = "phone_in_use"


class PhoneCodeInvalid(WxLoginError):
    """A getPhoneNumber code that is wrong, expired, already used, or another person's or app's.

    WeChat's 40029 on ``getuserphonenumber``, and also a code this site has already sent to WeChat once
    (it is never sent twice: each success costs money). Not a ``CodeInvalid``: the bearer token is fine,
    the person only has to tap the button again.
    """

    code = "phone_code_invalid"


class SessionKeyExpired(WxLoginError):
    """The stored mini-program session_key is stale (WeChat's checksession said 87009): call wx.login again.

    Decided by the stored key alone, never by the ciphertext, so it tells a prober nothing about the data.
    """

    code = "session_key_expired"


class ImageInvalid(WxLoginError):
    """An uploaded avatar that is not a usable image (by its content): not JPEG/PNG/GIF/WebP, truncated,
    animated, or with dimensions over the bound (a decompression bomb). ``detail`` is for the log only."""

    code = "image_invalid"


class ContentRisky(WxLoginError):
    """WeChat's content check (msg_sec_check) says the nickname is ``risky``: refused, nothing stored."""

    code = "content_risky"


# --- WeChat upstream -----------------------------------------------------------------------


class WeChatError(WxLoginError):
    """WeChat answered with an errcode, or not usefully at all."""

    code = "wechat_error"

    def __init__(self, errcode: int | None = None, errmsg: str = "", rid: str = "") -> None:
        super().__init__(f"errcode={errcode} errmsg={errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.rid = rid


class WeChatUnavailable(WeChatError):
    """Network failure, timeout, 5xx or an unreadable body: WeChat is not answering properly."""

    code = "wechat_unavailable"
    network = False  # True when no answer arrived at all (the only case worth one retry)


class WeChatTimeout(WeChatUnavailable):
    """WeChat did not answer within the configured timeout."""

    code = "wechat_timeout"


class WeChatBusy(WeChatError):
    """errcode -1 (system busy) after the one retry."""

    code = "wechat_busy"


class CodeInvalid(WeChatError):
    """The code is wrong, expired or already used (40029, 40163, 42003, 41008)."""

    code = "code_invalid"


class WeChatRateLimited(WeChatError):
    """45011: the per-minute quota is exhausted."""

    code = "wechat_rate_limited"
    retry_after = 60  # the quota is per minute


class WeChatRiskBlocked(WeChatError):
    """40226: WeChat blocked a high-risk user."""

    code = "wechat_blocked"


class WeChatMisconfigured(WeChatError):
    """appid/secret/grant wrong (40013, 40125, 41002, ...): an operator must fix the settings."""

    code = "wechat_misconfigured"


class AccessTokenExpired(WeChatError):
    """42001/40001/40014 on a user token: refresh it with the refresh token."""

    code = "access_token_expired"


class AppTokenInvalid(WeChatError):
    """40001/40014/42001 on a call made with the app's own access token (not a person's grant).

    ``AppTokenService.call`` replaces the token and retries once; this reaches a caller only when the
    fresh token was refused too, or WeChat still hands the refused one and a forced refresh is not
    allowed yet (20 a day, 30 s apart). Nothing the person can do fixes it.
    """

    code = "app_token_invalid"


class RefreshTokenExpired(WeChatError):
    """40030/42002/42007: the person must authorise again."""

    code = "refresh_token_expired"


class ScopeUnauthorized(WeChatError):
    """48001/50001: the grant does not allow this call (e.g. userinfo on snsapi_base)."""

    code = "scope_unauthorized"
