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

from dataclasses import dataclass

from wxlogin import errors as e

# WWW-Authenticate for the API's 401s (RFC 6750): ``error="invalid_token"`` only where a bearer token was
# presented and refused; a refused WeChat code is not a token, so its challenge names no error (§3.1).
_TOKEN_CHALLENGE = 'Bearer realm="wxlogin", error="invalid_token"'
_LOGIN_CHALLENGE = 'Bearer realm="wxlogin"'

_RETRY_LOGIN = "请重新发起登录。"


@dataclass(frozen=True)
class ErrorRow:
    """One domain error: the page a person sees and the JSON an API client gets."""

    cls: type[e.WxLoginError]
    page_status: int
    title: str                 # Chinese; catalog_en.py has the English
    message: str
    api_status: int
    api_message: str           # Chinese, sent as-is
    doc: str                   # English, for the OpenAPI document
    retry: bool = True         # the page offers "sign in again"
    challenge: str | None = None  # WWW-Authenticate on the API answer

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


ERRORS: tuple[ErrorRow, ...] = (
    # --- request and session -------------------------------------------------------------------
    ErrorRow(e.BadRequest, 400, "请求无效", "请求的参数不正确。",
             400, "请求格式不正确。", "Not JSON, not an object, duplicate keys, NaN, a missing or malformed field"),
    ErrorRow(e.EncryptedDataInvalid, 400, "请求无效", "请求的参数不正确。",  # pages never decrypt open data
             400, "加密数据无效或已过期，请重新获取后再试。",
             "Any open-data failure (one status, one body: no padding oracle)"),
    # A stale session_key (issue 13): its own answer, decided by the stored key and WeChat's checksession,
    # never by the ciphertext (a tampered ciphertext with a good key stays encrypted_data_invalid).
    ErrorRow(e.SessionKeyExpired, 400, "请求无效", "请求的参数不正确。",  # pages never decrypt open data
             401, "会话密钥已过期，请重新调用 wx.login 登录后再试。",
             "The stored session_key is stale (WeChat's checksession says 87009): call wx.login and log in again",
             challenge=_LOGIN_CHALLENGE),
    ErrorRow(e.InvalidToken, 400, "请求无效", "请求的参数不正确。",  # pages never read bearer tokens
             401, "令牌无效、已过期或已注销，请重新登录。",
             "Bearer token missing, malformed, expired, revoked or of another kind",
             challenge=_TOKEN_CHALLENGE),
    ErrorRow(e.AccountDisabled, 403, "账号已停用", "这个账号已被停用。如有疑问请联系客服。",
             403, "账号已停用。", "The account is disabled", retry=False),
    ErrorRow(e.NotFound, 404, "找不到页面", "你访问的内容不存在。",
             404, "资源不存在。", "No such resource"),
    ErrorRow(e.LinkConflict, 409, "这个微信已绑定其他账号", "这个微信身份属于另一个账号。",
             409, "该微信身份已绑定其他账号。", "The WeChat identity belongs to another account (web flows)"),
    ErrorRow(e.PhoneInUse, 409, "这个手机号已绑定其他账号",
             "手机号不会从一个账号转到另一个账号。如果两个账号都是你的，请先合并账号。",
             409, "该手机号已绑定其他账号。",
             "The phone number is bound to another account (never moved; merging the accounts moves it)"),
    ErrorRow(e.PhoneCodeInvalid, 400, "手机号授权已失效", "请重新点击按钮获取手机号。",
             400, "手机号授权码无效、已过期或已使用，请重新点击按钮获取。",
             "The getPhoneNumber code is wrong, expired, already used (here or at WeChat: 40029), or another "
             "person's: tap the button again"),
    ErrorRow(e.MergeRefused, 403, "无法合并账号", "已停用的账号不能合并，也不能被合并。两个账号都没有改变。",
             403, "已停用的账号不能合并。", "A merge from or into a disabled account (web flows)", retry=False),
    ErrorRow(e.MergeNotConfirmed, 403, "合并没有完成",
             "只有用将被删除的那个账号的微信确认，才能合并。两个账号都没有改变。",
             403, "合并需要被合并账号的微信确认。",
             "The merge was not confirmed with the WeChat of the account merged away (web flows)"),
    ErrorRow(e.LastLoginMethod, 400, "无法解除绑定", "账号至少需要保留一种登录方式。",
             400, "账号至少需要保留一种登录方式。", "The last login method cannot be unlinked (web flows)"),
    # Profile fill-in (issue 13). Pages never raise them; listed so every error has one answer in both dialects.
    ErrorRow(e.ImageInvalid, 400, "图片无效", "请选择一张 JPEG 或 PNG 图片。",
             400, "头像不是可用的图片（支持 JPEG、PNG、GIF 首帧、WebP，边长不超过 4096 像素，不支持动图）。",
             "The upload is not a usable image by its content (not JPEG/PNG/GIF/WebP, truncated, animated, "
             "or over 4096 pixels a side: a decompression bomb)"),
    ErrorRow(e.ContentRisky, 422, "内容不合规", "这段内容没有通过微信的内容安全检查。",
             422, "昵称未通过微信内容安全检查，请换一个。",
             "WeChat's content check (msg_sec_check) says the nickname is risky; nothing was stored",
             retry=False),
    # Desktop scan logins (issue 14): a scene the mini-program scans, confirms or refuses (and the waiting page
    # shows). Four cases, four codes, so the mini-program can tell the person exactly what happened.
    ErrorRow(e.SceneNotFound, 404, "二维码无效", "找不到这个登录二维码。请在电脑上刷新二维码后重新扫描。",
             404, "找不到这个登录二维码，请在电脑上刷新后重新扫码。",
             "No such login scene (never created, mistyped, or not a mini-program code's scene)"),
    ErrorRow(e.SceneExpired, 410, "二维码已失效", "这个登录二维码已过期。请在电脑上刷新二维码后重新扫描。",
             410, "登录二维码已过期，请在电脑上刷新后重新扫码。",
             "The login scene expired before it was confirmed: the desktop shows a fresh code"),
    ErrorRow(e.SceneRefused, 409, "已取消登录", "这次登录已在手机上取消。需要登录时请在电脑上刷新二维码。",
             409, "这次登录已在手机上取消，请在电脑上刷新后重新扫码。",
             "The person refused this login scene in the mini-program; it cannot be confirmed any more"),
    ErrorRow(e.SceneUsed, 409, "二维码已使用", "每个登录二维码只能使用一次。请在电脑上刷新二维码。",
             409, "这个登录二维码已经使用过了。",
             "The login scene was confirmed already: a scene signs one desktop in, once"),
    ErrorRow(e.RateLimited, 429, "请求过于频繁", "请稍等一会儿再试。",
             429, "请求过于频繁，请稍后再试。", "This site's limit on attempts (see Retry-After)"),
    ErrorRow(e.Overloaded, 503, "服务繁忙", "现在访问的人太多，请过一会儿再试。",
             503, "服务繁忙，请稍后再试。", "More requests wait for MySQL than the queue admits (see Retry-After)"),
    ErrorRow(e.DatabaseUnavailable, 503, "服务暂时不可用", "我们的服务暂时无法处理请求，请稍后重试。",
             503, "服务暂时不可用，请稍后再试。", "MySQL did not answer within the configured timeouts"),
    # --- the OAuth redirect flows (web pages only; listed for the API so every error has one answer)
    ErrorRow(e.StateExpired, 400, "登录链接已过期", "登录需在 10 分钟内完成。" + _RETRY_LOGIN,
             400, "登录已超时，请重新发起登录。", "The OAuth state is older than 10 minutes (web flows)"),
    ErrorRow(e.StateUnbound, 400, "无法确认是你本人发起的登录",
             "请在发起登录的同一个浏览器中完成登录，并允许本站使用 Cookie。",
             400, "无法确认登录的发起方，请重新发起登录。", "The browser binding cookie is missing (web flows)"),
    ErrorRow(e.StateReplayed, 400, "登录链接已被使用", "每个登录链接只能使用一次。" + _RETRY_LOGIN,
             400, "登录请求已被使用，请重新发起登录。", "The OAuth state was already used (web flows)"),
    ErrorRow(e.StateInvalid, 400, "登录链接无效", "这个登录链接不完整或已被修改。" + _RETRY_LOGIN,
             400, "登录参数无效，请重新发起登录。", "The OAuth state is malformed or forged (web flows)"),
    # 200 on a page: declining is a normal outcome, shown as information; for a client it is a refusal.
    ErrorRow(e.LoginCancelled, 200, "你已取消登录", "你在微信中拒绝了授权，没有登录。想登录时可以再试一次。",
             403, "用户拒绝了微信授权。", "The person declined in WeChat (web flows)"),
    ErrorRow(e.SnapshotUser, 200, "请使用完整服务",
             "你正在查看页面快照。请点击页面底部的「使用完整服务」，然后再次登录。",
             403, "页面快照中的虚拟用户无法登录。", "A snapshot-page virtual person (web flows)"),
    # --- WeChat upstream -------------------------------------------------------------------------
    # A page is 400 where the API is 401: a 401 must carry a WWW-Authenticate challenge, and a page has
    # none to offer (signing in is a redirect to /login), so the page says "start again" with a 400.
    ErrorRow(e.CodeInvalid, 400, "微信登录凭证已失效", "微信返回的登录凭证已过期或已被使用。" + _RETRY_LOGIN,
             401, "登录凭证 code 无效、已过期或已使用，请重新调用 wx.login。",
             "WeChat says the code is wrong, expired or used (40029, 40163, 42003, 41008)",
             challenge=_LOGIN_CHALLENGE),
    ErrorRow(e.AccessTokenExpired, 400, "微信授权已过期", "请重新授权登录。",
             401, "微信授权已过期，请重新授权登录。", "WeChat refused the access token (42001, 40001, 40014)",
             challenge=_LOGIN_CHALLENGE),
    ErrorRow(e.RefreshTokenExpired, 400, "微信授权已过期", "请重新授权登录。",
             401, "微信授权已过期，请重新授权登录。", "WeChat refused the refresh token (40030, 42002, 42007)",
             challenge=_LOGIN_CHALLENGE),
    ErrorRow(e.ScopeUnauthorized, 400, "微信授权范围不足", "请重新授权登录。",
             401, "微信授权范围不足，请重新授权登录。", "The WeChat grant does not allow the call (48001, 50001)",
             challenge=_LOGIN_CHALLENGE),
    # The site's own app access token (issue 13): one replacement was tried already; the person can only wait.
    ErrorRow(e.AppTokenInvalid, 502, "微信暂时没有响应", "微信返回了错误。请稍后再试。",
             502, "服务端的微信接口凭证暂时失效，请稍后再试。",
             "WeChat refused the site's app access token, also after one replacement (40001, 40014, 42001)"),
    ErrorRow(e.WeChatRiskBlocked, 403, "微信拦截了这次登录", "微信判断这次登录存在风险。请稍后再试或联系客服。",
             403, "微信判断此次登录存在风险，已拦截。", "WeChat's risk control (40226, 50002)"),
    ErrorRow(e.WeChatRateLimited, 429, "登录过于频繁", "请稍等一分钟后再试。",
             429, "微信接口调用过于频繁，请一分钟后再试。", "WeChat's minute quota (45011), Retry-After: 60"),
    ErrorRow(e.WeChatMisconfigured, 502, "登录服务暂时不可用",
             "网站的微信登录配置有误，我们已记录这个问题。请稍后再试。",
             502, "服务端微信配置有误。", "The site's appid/secret is wrong (40013, 40125, ...)"),
    ErrorRow(e.WeChatUnavailable, 502, "微信暂时没有响应", "连接微信服务器失败。请稍后再试。",
             502, "微信服务器暂时无法访问，请稍后再试。", "WeChat unreachable or answering nonsense"),
    ErrorRow(e.WeChatTimeout, 504, "微信暂时没有响应", "连接微信服务器失败。请稍后再试。",
             504, "微信服务器响应超时，请稍后再试。", "WeChat did not answer in time"),
    ErrorRow(e.WeChatBusy, 503, "微信繁忙", "微信服务器繁忙。请稍后再试。",
             503, "微信服务器繁忙，请稍后再试。", "WeChat errcode -1 twice (it is retried once)"),
    ErrorRow(e.WeChatError, 502, "微信登录失败", "微信返回了错误。请稍后再试。",
             502, "微信返回了错误，请稍后再试。", "Any other WeChat errcode"),
)

STATUSES: tuple[StatusRow, ...] = (
    StatusRow(400, "请求无效", "请求的参数不正确。", "bad_request", "请求格式不正确。", "Malformed request"),
    StatusRow(403, "没有权限", "请求被拒绝。如果你刚才提交了表单，请刷新页面后再试。",
              "forbidden", "请求被拒绝。", "Refused"),
    StatusRow(404, "找不到页面", "你访问的页面不存在。", "not_found", "接口不存在。", "No such API path"),
    StatusRow(405, "请求方式不支持", "这个地址不支持这种请求方式。",
              "method_not_allowed", "不支持该请求方法。", "Wrong method"),
    StatusRow(413, "请求太大", "提交的内容超过了大小限制。", "body_too_large", "请求体过大。",
              "Body over 32 KiB (an avatar upload: a file over 1 MiB)"),
    StatusRow(415, "请求无效", "请求的参数不正确。",
              "unsupported_media_type",
              "请使用正确的 Content-Type：接口为 application/json，头像上传为 multipart/form-data。",
              "Not application/json (an avatar upload: not multipart/form-data)"),
    StatusRow(429, "请求过于频繁", "请稍等一会儿再试。", "rate_limited", "请求过于频繁，请稍后再试。",
              "Too many requests"),
    StatusRow(500, "出错了", "服务器遇到了问题，请稍后重试。", "internal_error", "服务器内部错误。", "A bug"),
    StatusRow(503, "服务暂时不可用", "我们的服务暂时无法处理请求，请稍后重试。",
              "service_unavailable", "服务暂时不可用，请稍后再试。", "Temporarily unavailable"),
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


def error_page(exc: BaseException | None, status_code: int) -> ErrorPage:
    """The page for whatever ``write_error`` was given: a domain error's row, else the bare status."""
    row = row_for(exc)
    if row is None:
        return page_for_status(status_code)
    return ErrorPage(status=row.page_status, code=row.code, title=row.title, message=row.message,
                     retry=row.retry, headers=_retry_after(exc))


def page_for_error(exc: e.WxLoginError) -> ErrorPage:
    """The page for a domain error (an error outside the table is a 500 page)."""
    return error_page(exc, 500)


def page_for_status(status: int) -> ErrorPage:
    """The page for a bare HTTP status; a status outside the table keeps its number with the generic text."""
    row = _BY_STATUS.get(status, INTERNAL)
    return ErrorPage(status=status, code=f"http_{status}", title=row.title, message=row.message, retry=status >= 500)


def api_error(exc: BaseException | None, status_code: int) -> ApiError:
    """The API's answer for whatever ``write_error`` was given; a status outside the table is a 500."""
    row = row_for(exc)
    if row is not None:
        headers = _retry_after(exc) + ((("WWW-Authenticate", row.challenge),) if row.challenge else ())
        return ApiError(status=row.api_status, code=row.code, message=row.api_message, headers=headers)
    status_row = _BY_STATUS.get(status_code, INTERNAL)
    return ApiError(status=status_row.status, code=status_row.api_code, message=status_row.api_message)
