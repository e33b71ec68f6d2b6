"""One table from domain errors to what a person sees: status, title, explanation, next step."""

from __future__ import annotations

from dataclasses import dataclass

from wxlogin import errors as e


@dataclass(frozen=True)
class ErrorPage:
    status: int
    code: str
    title: str
    message: str
    retry: bool = True


_RETRY_LOGIN = "请重新发起登录。"

_PAGES: list[tuple[type[e.WxLoginError], int, str, str]] = [
    (e.StateExpired, 400, "登录链接已过期", "登录需在 10 分钟内完成。" + _RETRY_LOGIN),
    (e.StateUnbound, 400, "无法确认是你本人发起的登录",
     "请在发起登录的同一个浏览器中完成登录，并允许本站使用 Cookie。"),
    (e.StateReplayed, 400, "登录链接已被使用", "每个登录链接只能使用一次。" + _RETRY_LOGIN),
    (e.StateInvalid, 400, "登录链接无效", "这个登录链接不完整或已被修改。" + _RETRY_LOGIN),
    (e.LoginCancelled, 200, "你已取消登录", "你在微信中拒绝了授权，没有登录。想登录时可以再试一次。"),
    (e.SnapshotUser, 200, "请使用完整服务",
     "你正在查看页面快照。请点击页面底部的「使用完整服务」，然后再次登录。"),
    (e.CodeInvalid, 400, "微信登录凭证已失效", "微信返回的登录凭证已过期或已被使用。" + _RETRY_LOGIN),
    (e.WeChatRateLimited, 429, "登录过于频繁", "请稍等一分钟后再试。"),
    (e.WeChatRiskBlocked, 403, "微信拦截了这次登录", "微信判断这次登录存在风险。请稍后再试或联系客服。"),
    (e.WeChatMisconfigured, 502, "登录服务暂时不可用", "网站的微信登录配置有误，我们已记录这个问题。请稍后再试。"),
    (e.WeChatUnavailable, 502, "微信暂时没有响应", "连接微信服务器失败。请稍后再试。"),
    (e.WeChatBusy, 503, "微信繁忙", "微信服务器繁忙。请稍后再试。"),
    (e.AccessTokenExpired, 400, "微信授权已过期", "请重新授权登录。"),
    (e.RefreshTokenExpired, 400, "微信授权已过期", "请重新授权登录。"),
    (e.ScopeUnauthorized, 400, "微信授权范围不足", "请重新授权登录。"),
    (e.WeChatError, 502, "微信登录失败", "微信返回了错误。请稍后再试。"),
    (e.AccountDisabled, 403, "账号已停用", "这个账号已被停用。如有疑问请联系客服。"),
    (e.DatabaseUnavailable, 503, "服务暂时不可用", "我们的服务暂时无法处理请求，请稍后重试。"),
    (e.Overloaded, 503, "服务繁忙", "现在访问的人太多，请过一会儿再试。"),
    (e.LinkConflict, 409, "这个微信已绑定其他账号", "这个微信身份属于另一个账号。"),
    (e.LastLoginMethod, 400, "无法解除绑定", "账号至少需要保留一种登录方式。"),
    (e.NotFound, 404, "找不到页面", "你访问的内容不存在。"),
    (e.BadRequest, 400, "请求无效", "请求的参数不正确。"),
]

_STATUS_PAGES = {
    400: ("请求无效", "请求的参数不正确。"),
    403: ("没有权限", "请求被拒绝。如果你刚才提交了表单，请刷新页面后再试。"),
    404: ("找不到页面", "你访问的页面不存在。"),
    405: ("请求方式不支持", "这个地址不支持这种请求方式。"),
    413: ("请求太大", "提交的内容超过了大小限制。"),
    429: ("请求过于频繁", "请稍等一会儿再试。"),
    503: ("服务暂时不可用", "我们的服务暂时无法处理请求，请稍后重试。"),
}


def page_for_error(exc: e.WxLoginError) -> ErrorPage:
    """Return the page for a domain error (the most specific class in the table wins)."""
    for cls, status, title, message in _PAGES:
        if isinstance(exc, cls):
            return ErrorPage(status=status, code=exc.code, title=title, message=message,
                             retry=not isinstance(exc, e.AccountDisabled))
    return page_for_status(500)


def page_for_status(status: int) -> ErrorPage:
    """Return the page for a bare HTTP status."""
    title, message = _STATUS_PAGES.get(status, ("出错了", "服务器遇到了问题，请稍后重试。"))
    return ErrorPage(status=status, code=f"http_{status}", title=title, message=message, retry=status >= 500)
