"""The one error table: every domain error and bare HTTP status -> its page, its API answer, its OpenAPI text.

Why here: the error classes and their stable codes are domain facts and stay in ``wxlogin.errors``,
which knows no HTTP (services and the store raise them without a status in sight). Which status, page
and JSON body a failure becomes is the handlers layer's business, and both dialects live in this
layer, so the mapping is one table here, not one per dialect. ``BaseHandler.write_error`` (pages),
``APIHandler.write_error`` (JSON) and ``openapi.py`` (the ``Error.error`` enum and each operation's
error statuses) all read it, and ``tests/unit/test_error_table.py`` proves every domain error has
exactly one row, and that the OpenAPI document and the README's API table list exactly its API codes.

A row is found by walking the exception's MRO, so the most specific class wins whatever the row
order, and a subclass without its own row answers as its nearest listed ancestor (with that row's
code, so the API never sends a code the OpenAPI document does not list).

The page and the API agree on a status except where a page cannot honestly use the API's one; the
README (next to the API error table) says why for each. Pages show Chinese titles and messages that
``catalog_en.py`` translates; API messages are Chinese only (clients branch on ``error``).
Headers come from here too: ``Retry-After`` from the error's ``retry_after``, ``WWW-Authenticate``
from the row (every API 401 carries a challenge; a page never answers 401).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wxlogin import errors as e

# WWW-Authenticate for the API's 401s (RFC 6750): ``error="invalid_token"`` only where a bearer token was
# presented and refused; a refused WeChat code is not a token, so its challenge names no error (§3.1).
_TOKEN_CHALLENGE = 'Bearer realm="wxlogin", error="invalid_token"'
_LOGIN_CHALLENGE = 'Bearer realm="wxlogin"'

_RETRY_LOGIN = "请重新发起登录。"


class Retry(enum.StrEnum):
    """What the page's main button does."""

    LOGIN = "login"    # start signing in again (the handler's ``get_retry_url``); a signed-in person gets /account
    RELOAD = "reload"  # the same page again, a moment later: busy, down or rate-limited, never "sign in again"


@dataclass(frozen=True)
class ErrorRow:
    """One domain error: the page a person sees and the JSON an API client gets."""

    cls: type[e.WxLoginError]
    page_status: int
    title: str                 # Chinese, plain, saying what to do next; catalog_en.py has the English
    message: str
    api_status: int
    api_message: str           # Chinese, sent as-is
    doc: str                   # English, for the OpenAPI document
    retry: bool = True         # the page offers a way to try again (``retry_by`` says which)
    challenge: str | None = None  # WWW-Authenticate on the API answer
    icon: str = "alert"        # static/img/outcome/<icon>.svg
    retry_by: Retry = Retry.LOGIN
    title_in_wechat: str = ""  # the title inside WeChat's browser, where nobody scans (empty: ``title``)
    contact: bool = False      # the page names the site's customer service ([brand] support), when there is one

    @property
    def code(self) -> str:
        return self.cls.code


@dataclass(frozen=True)
class StatusRow:
    """A bare HTTP status (Tornado's own errors, HTTPError(n)): same status in both dialects."""

    status: int
    title: str
    message: str
    api_code: str
    api_message: str
    doc: str
    icon: str = "alert"
    retry_by: Retry = Retry.LOGIN


# Titles say what happened in plain words and what to do next ("登录超时，请重新扫码"), never WeChat's or
# HTTP's jargon (凭证, 参数, code, state); tests/unit/test_error_pages.py holds every row to that.
_BAD_ADDRESS = ("页面地址有误，请返回重试", "这个地址缺少内容或被改动过。请回到上一页重新操作。")
_TIMED_OUT = "登录超时，请重新扫码"
_TIMED_OUT_IN_WECHAT = "登录超时，请重新登录"
_WECHAT_SILENT = "微信暂时没有响应，请稍后再试"

ERRORS: tuple[ErrorRow, ...] = (
    # --- request and session -------------------------------------------------------------------
    ErrorRow(e.BadRequest, 400, *_BAD_ADDRESS,
             400, "请求格式不正确。", "Not JSON, not an object, duplicate keys, NaN, a missing or malformed field",
             icon="broken-link"),
    ErrorRow(e.EncryptedDataInvalid, 400, *_BAD_ADDRESS,  # pages never decrypt open data
             400, "加密数据无效或已过期，请重新获取后再试。",
             "Any open-data failure (one status, one body: no padding oracle)", icon="broken-link"),
    # A stale session_key (issue 13): its own answer, decided by the stored key and WeChat's checksession,
    # never by the ciphertext (a tampered ciphertext with a good key stays encrypted_data_invalid).
    ErrorRow(e.SessionKeyExpired, 400, *_BAD_ADDRESS,  # pages never decrypt open data
             401, "会话密钥已过期，请重新调用 wx.login 登录后再试。",
             "The stored session_key is stale (WeChat's checksession says 87009): call wx.login and log in again",
             challenge=_LOGIN_CHALLENGE, icon="broken-link"),
    ErrorRow(e.InvalidToken, 400, *_BAD_ADDRESS,  # pages never read bearer tokens
             401, "令牌无效、已过期或已注销，请重新登录。",
             "Bearer token missing, malformed, expired, revoked or of another kind",
             challenge=_TOKEN_CHALLENGE, icon="broken-link"),
    ErrorRow(e.AccountDisabled, 403, "账号已停用，请联系客服", "这个账号已被停用，无法登录。如有疑问请联系客服。",
             403, "账号已停用。", "The account is disabled", retry=False, icon="locked", contact=True),
    # Closing an account (issue 16): a closing account only restores, exports and signs out; closing it and the
    # full export need a recent WeChat sign-in, of this very account.
    ErrorRow(e.DeletionPending, 403, "账号正在注销中", "这个账号已申请注销。如需继续使用，请先取消注销。",
             403, "账号正在注销中：只能取消注销（POST /api/me/restore）、导出数据或退出登录。",
             "The account is closing (in its grace period): only restore, export and logout work", icon="locked"),
    ErrorRow(e.ReauthRequired, 403, "请先用微信确认身份", "为了保护你的账号，这一步需要你刚刚用微信扫码或确认登录过。",
             403, "需要最近的微信登录：请重新调用 wx.login 登录后再试。",
             "The action needs a WeChat sign-in within [accounts] reauth_window; this token's is older",
             icon="shield"),
    ErrorRow(e.WrongAccount, 403, "这不是当前账号的微信",
             "你用来确认的微信不属于当前登录的账号，没有做任何改变。请用这个账号的微信重新确认。",
             403, "该微信身份不属于当前账号，未做任何改变。",
             "The fresh WeChat confirmation (the code) belongs to another WeChat identity than this account's",
             icon="accounts"),
    ErrorRow(e.NotFound, 404, "找不到页面，请返回首页", "你要找的内容不存在，或已被删除。",
             404, "资源不存在。", "No such resource", icon="not-found"),
    # Desktop scan-login scenes (issue 14): the waiting page's complete/wait/events, and the phone's API.
    ErrorRow(e.SceneNotFound, 404, "二维码已失效，请刷新",
             "找不到这个登录二维码，或者它不是在这个浏览器中打开的。请刷新二维码。",
             404, "登录二维码不存在、已清除或不属于这个浏览器。",
             "No such scan-login scene, or it belongs to another browser (the two are not told apart)",
             icon="broken-link"),
    ErrorRow(e.SceneExpired, 410, "二维码已过期，请刷新后重新扫码", "二维码已过期。请刷新二维码后重新扫码。",
             410, "二维码已过期，请刷新后重新扫码。", "The scan-login scene expired before it was confirmed and used",
             icon="expired"),
    ErrorRow(e.ScenePending, 409, "请先在手机上确认登录", "扫码后，请在手机微信里确认登录，这里会自动继续。",
             409, "尚未在手机上确认登录。", "The scan-login scene is not confirmed on the phone (yet)", icon="phone"),
    ErrorRow(e.SceneRefused, 403, "已取消登录，请刷新二维码", "你在手机上取消了这次登录。想登录时请刷新二维码。",
             403, "已在手机上取消登录。", "The person refused the scan login on the phone", icon="cancelled"),
    ErrorRow(e.SceneUsed, 409, "二维码已用过，请刷新", "每个登录二维码只能使用一次。请刷新二维码。",
             409, "该登录二维码已使用。", "The scan-login scene already signed a browser in (a scene works once)",
             icon="broken-link"),
    ErrorRow(e.LinkConflict, 409, "这个微信已绑定其他账号",
             "这个微信身份属于另一个账号。如果两个账号都是你的，请合并账号。",
             409, "该微信身份已绑定其他账号。", "The WeChat identity belongs to another account (web flows)",
             icon="accounts"),
    ErrorRow(e.PhoneInUse, 409, "这个手机号已绑定其他账号",
             "手机号不会从一个账号转到另一个账号。如果两个账号都是你的，请先合并账号。",
             409, "该手机号已绑定其他账号。",
             "The phone number is bound to another account (never moved; merging the accounts moves it)",
             icon="accounts"),
    ErrorRow(e.PhoneCodeInvalid, 400, "授权已过期，请重新获取手机号", "请重新点击按钮获取手机号。",
             400, "手机号授权码无效、已过期或已使用，请重新点击按钮获取。",
             "The getPhoneNumber code is wrong, expired, already used (here or at WeChat: 40029), or another "
             "person's: tap the button again", icon="expired"),
    ErrorRow(e.MergeRefused, 403, "无法合并账号",
             "已停用的账号不能合并，也不能被合并。两个账号都没有改变。如有疑问请联系客服。",
             403, "已停用的账号不能合并。", "A merge from or into a disabled account (web flows)", retry=False,
             icon="locked", contact=True),
    ErrorRow(e.MergeNotConfirmed, 403, "合并没有完成，请用另一个账号的微信确认",
             "只有用将被删除的那个账号的微信确认，才能合并。两个账号都没有改变。",
             403, "合并需要被合并账号的微信确认。",
             "The merge was not confirmed with the WeChat of the account merged away (web flows)", icon="accounts"),
    ErrorRow(e.LastLoginMethod, 400, "无法解除绑定，请先绑定另一种方式",
             "账号至少需要保留一种登录方式。",
             400, "账号至少需要保留一种登录方式。", "The last login method cannot be unlinked (web flows)",
             icon="locked"),
    # Profile fill-in (issue 13). Pages never raise them; listed so every error has one answer in both dialects.
    ErrorRow(e.ImageInvalid, 400, "图片无法使用，请换一张", "请选择一张 JPEG 或 PNG 图片。",
             400, "头像不是可用的图片（支持 JPEG、PNG、GIF 首帧、WebP，边长不超过 4096 像素，不支持动图）。",
             "The upload is not a usable image by its content (not JPEG/PNG/GIF/WebP, truncated, animated, "
             "or over 4096 pixels a side: a decompression bomb)", icon="image"),
    ErrorRow(e.ContentRisky, 422, "内容未通过检查，请修改后再试", "这段内容没有通过微信的内容安全检查。",
             422, "昵称未通过微信内容安全检查，请换一个。",
             "WeChat's content check (msg_sec_check) says the nickname is risky; nothing was stored",
             retry=False, icon="shield"),
    ErrorRow(e.RateLimited, 429, "操作太频繁，请稍后再试", "请稍等一会儿再试。",
             429, "请求过于频繁，请稍后再试。", "This site's limit on attempts (see Retry-After)",
             icon="wait", retry_by=Retry.RELOAD),
    ErrorRow(e.Overloaded, 503, "服务繁忙，请稍后再试", "现在访问的人太多，请过一会儿再试。",
             503, "服务繁忙，请稍后再试。",
             "More requests wait for MySQL than the queue admits, or rows the request needs stayed locked by another "
             "transaction (see Retry-After)",
             icon="wait", retry_by=Retry.RELOAD),
    ErrorRow(e.DatabaseUnavailable, 503, "服务暂时不可用，请稍后再试",
             "我们的服务暂时无法处理请求，你的账号不受影响。请稍后重试。",
             503, "服务暂时不可用，请稍后再试。", "MySQL did not answer within the configured timeouts",
             icon="offline", retry_by=Retry.RELOAD),
    # --- the OAuth redirect flows (web pages only; listed for the API so every error has one answer)
    ErrorRow(e.StateExpired, 400, _TIMED_OUT, "登录需在 10 分钟内完成。" + _RETRY_LOGIN,
             400, "登录已超时，请重新发起登录。", "The OAuth state is older than 10 minutes (web flows)",
             icon="expired", title_in_wechat=_TIMED_OUT_IN_WECHAT),
    ErrorRow(e.StateUnbound, 400, "请在同一个浏览器中完成登录",
             "请在发起登录的同一个浏览器中完成登录，并允许本站使用 Cookie。",
             400, "无法确认登录的发起方，请重新发起登录。", "The browser binding cookie is missing (web flows)",
             icon="browser"),
    ErrorRow(e.StateReplayed, 400, "登录链接已用过，请重新登录", "每个登录链接只能使用一次。" + _RETRY_LOGIN,
             400, "登录请求已被使用，请重新发起登录。", "The OAuth state was already used (web flows)",
             icon="broken-link"),
    ErrorRow(e.StateInvalid, 400, "登录链接无效，请重新登录", "这个登录链接不完整或已被修改。" + _RETRY_LOGIN,
             400, "登录参数无效，请重新发起登录。", "The OAuth state is malformed or forged (web flows)",
             icon="broken-link"),
    # 200 on a page: declining is a normal outcome, shown as information; for a client it is a refusal.
    ErrorRow(e.LoginCancelled, 200, "你已取消登录", "你在微信中拒绝了授权，没有登录。想登录时可以再试一次。",
             403, "用户拒绝了微信授权。", "The person declined in WeChat (web flows)", icon="cancelled"),
    ErrorRow(e.SnapshotUser, 200, "请使用完整服务",
             "你正在查看页面快照。请点击页面底部的「使用完整服务」，然后再次登录。",
             403, "页面快照中的虚拟用户无法登录。", "A snapshot-page virtual person (web flows)", icon="info"),
    # --- WeChat upstream -------------------------------------------------------------------------
    # A page is 400 where the API is 401: a 401 must carry a WWW-Authenticate challenge, and a page has
    # none to offer (signing in is a redirect to /login), so the page says "start again" with a 400.
    ErrorRow(e.CodeInvalid, 400, _TIMED_OUT, "这次登录等得太久，或已经完成过。请重新登录。",
             401, "登录凭证 code 无效、已过期或已使用，请重新调用 wx.login。",
             "WeChat says the code is wrong, expired or used (40029, 40163, 42003, 41008)",
             challenge=_LOGIN_CHALLENGE, icon="expired", title_in_wechat=_TIMED_OUT_IN_WECHAT),
    ErrorRow(e.AccessTokenExpired, 400, "授权已过期，请重新登录", "为了安全，微信的授权有有效期。请重新登录并授权。",
             401, "微信授权已过期，请重新授权登录。", "WeChat refused the access token (42001, 40001, 40014)",
             challenge=_LOGIN_CHALLENGE, icon="expired"),
    ErrorRow(e.RefreshTokenExpired, 400, "授权已过期，请重新登录", "为了安全，微信的授权有有效期。请重新登录并授权。",
             401, "微信授权已过期，请重新授权登录。", "WeChat refused the refresh token (40030, 42002, 42007)",
             challenge=_LOGIN_CHALLENGE, icon="expired"),
    ErrorRow(e.ScopeUnauthorized, 400, "需要你的同意，请重新登录",
             "这一步需要你在微信中同意授权。请重新登录，并在微信中点「允许」。",
             401, "微信授权范围不足，请重新授权登录。", "The WeChat grant does not allow the call (48001, 50001)",
             challenge=_LOGIN_CHALLENGE, icon="info"),
    # The site's own app access token (issue 13): one replacement was tried already; the person can only wait.
    ErrorRow(e.AppTokenInvalid, 502, _WECHAT_SILENT, "微信返回了错误。请稍后再试。",
             502, "服务端的微信接口凭证暂时失效，请稍后再试。",
             "WeChat refused the site's app access token, also after one replacement (40001, 40014, 42001)",
             icon="offline"),
    ErrorRow(e.WeChatRiskBlocked, 403, "微信拦截了登录，请稍后再试", "微信判断这次登录存在风险。请稍后再试或联系客服。",
             403, "微信判断此次登录存在风险，已拦截。", "WeChat's risk control (40226, 50002)", icon="shield",
             contact=True),
    ErrorRow(e.WeChatRateLimited, 429, "登录太频繁，请一分钟后再试", "请稍等一分钟后再试。",
             429, "微信接口调用过于频繁，请一分钟后再试。", "WeChat's minute quota (45011), Retry-After: 60",
             icon="wait"),
    ErrorRow(e.WeChatMisconfigured, 502, "登录暂时不可用，请稍后再试",
             "网站的微信登录配置有误，我们已记录这个问题。请稍后再试。",
             502, "服务端微信配置有误。", "The site's appid/secret is wrong (40013, 40125, ...)", icon="alert"),
    ErrorRow(e.WeChatUnavailable, 502, _WECHAT_SILENT, "连接微信服务器失败。请稍后再试。",
             502, "微信服务器暂时无法访问，请稍后再试。", "WeChat unreachable or answering nonsense", icon="offline"),
    ErrorRow(e.WeChatTimeout, 504, _WECHAT_SILENT, "连接微信服务器失败。请稍后再试。",
             504, "微信服务器响应超时，请稍后再试。", "WeChat did not answer in time", icon="offline"),
    ErrorRow(e.WeChatBusy, 503, "微信繁忙，请稍后再试", "微信服务器繁忙。请稍后再试。",
             503, "微信服务器繁忙，请稍后再试。", "WeChat errcode -1 twice (it is retried once)", icon="wait"),
    ErrorRow(e.WeChatError, 502, "微信登录失败，请稍后再试", "微信返回了错误。请稍后再试。",
             502, "微信返回了错误，请稍后再试。", "Any other WeChat errcode", icon="alert"),
)

STATUSES: tuple[StatusRow, ...] = (
    StatusRow(400, *_BAD_ADDRESS, "bad_request", "请求格式不正确。", "Malformed request", icon="broken-link"),
    StatusRow(403, "请刷新页面后再试", "请求被拒绝。如果你刚才提交了表单，请刷新页面后再试。",
              "forbidden", "请求被拒绝。", "Refused", icon="locked"),
    StatusRow(404, "找不到页面，请返回首页", "你访问的页面不存在。", "not_found", "接口不存在。", "No such API path",
              icon="not-found"),
    StatusRow(405, "这个地址不能这样打开，请返回首页", "这个地址不支持这种操作。",
              "method_not_allowed", "不支持该请求方法。", "Wrong method", icon="not-found"),
    StatusRow(413, "内容太大，请换一个小一些的", "提交的内容超过了大小限制。", "body_too_large", "请求体过大。",
              "Body over 32 KiB (an avatar upload: a file over 1 MiB)", icon="image"),
    StatusRow(415, *_BAD_ADDRESS,
              "unsupported_media_type",
              "请使用正确的 Content-Type：接口为 application/json，头像上传为 multipart/form-data。",
              "Not application/json (an avatar upload: not multipart/form-data)", icon="broken-link"),
    StatusRow(429, "操作太频繁，请稍后再试", "请稍等一会儿再试。", "rate_limited", "请求过于频繁，请稍后再试。",
              "Too many requests", icon="wait", retry_by=Retry.RELOAD),
    StatusRow(500, "出错了，请稍后再试", "服务器遇到了问题，请稍后重试。", "internal_error", "服务器内部错误。",
              "A bug"),
    StatusRow(503, "服务暂时不可用，请稍后再试", "我们的服务暂时无法处理请求，你的账号不受影响。请稍后重试。",
              "service_unavailable", "服务暂时不可用，请稍后再试。", "Temporarily unavailable", icon="offline",
              retry_by=Retry.RELOAD),
)

_BY_CLASS = {row.cls: row for row in ERRORS}
_BY_STATUS = {row.status: row for row in STATUSES}
INTERNAL = _BY_STATUS[500]


def api_codes() -> list[str]:
    """Every code the API can answer, in table order, each once (the OpenAPI ``Error.error`` enum)."""
    codes = [row.code for row in ERRORS] + [row.api_code for row in STATUSES]
    return list(dict.fromkeys(codes))


@dataclass(frozen=True)
class ErrorPage:
    status: int
    code: str
    title: str
    message: str
    retry: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    icon: str = "alert"
    retry_by: Retry = Retry.LOGIN
    contact: bool = False


@dataclass(frozen=True)
class ApiError:
    status: int
    code: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


def row_for(exc: BaseException | None) -> ErrorRow | None:
    """The row of a domain error: its own class's, else its nearest listed ancestor's; None for anything else."""
    if not isinstance(exc, e.WxLoginError):
        return None
    for cls in type(exc).__mro__:
        row = _BY_CLASS.get(cls)
        if row is not None:
            return row
    return None


def _retry_after(exc: BaseException | None) -> tuple[tuple[str, str], ...]:
    seconds = exc.retry_after if isinstance(exc, e.WxLoginError) else None
    return (("Retry-After", str(seconds)),) if seconds is not None else ()


def error_page(exc: BaseException | None, status_code: int, *, in_wechat: bool = False) -> ErrorPage:
    """The page for whatever ``write_error`` was given: a domain error's row, else the bare status.

    ``in_wechat``: the visitor is in WeChat's browser, where signing in again is a tap, not a scan.
    """
    row = row_for(exc)
    if row is None:
        return page_for_status(status_code)
    title = row.title_in_wechat if in_wechat and row.title_in_wechat else row.title
    return ErrorPage(status=row.page_status, code=row.code, title=title, message=row.message,
                     retry=row.retry, headers=_retry_after(exc), icon=row.icon, retry_by=row.retry_by,
                     contact=row.contact)


def page_for_error(exc: e.WxLoginError) -> ErrorPage:
    """The page for a domain error (an error outside the table is a 500 page)."""
    return error_page(exc, 500)


def page_for_status(status: int) -> ErrorPage:
    """The page for a bare HTTP status; a status outside the table keeps its number with the generic text."""
    row = _BY_STATUS.get(status, INTERNAL)
    retry = status >= 500 or row.retry_by is Retry.RELOAD  # 429: the same page again, after a moment
    return ErrorPage(status=status, code=f"http_{status}", title=row.title, message=row.message, retry=retry,
                     icon=row.icon, retry_by=row.retry_by)


def api_error(exc: BaseException | None, status_code: int) -> ApiError:
    """The API's answer for whatever ``write_error`` was given; a status outside the table is a 500."""
    row = row_for(exc)
    if row is not None:
        headers = _retry_after(exc) + ((("WWW-Authenticate", row.challenge),) if row.challenge else ())
        return ApiError(status=row.api_status, code=row.code, message=row.api_message, headers=headers)
    status_row = _BY_STATUS.get(status_code, INTERNAL)
    return ApiError(status=status_row.status, code=status_row.api_code, message=status_row.api_message)
