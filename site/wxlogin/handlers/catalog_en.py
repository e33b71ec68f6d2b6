"""English for every Chinese string the pages show (a test keeps this complete)."""

EN: dict[str, str] = {
    # layout
    "微信登录": "Sign in with WeChat",
    "沙盒模式：登录使用模拟的微信，不会连接真实微信": "Sandbox mode: logins use a simulated WeChat, never the real one",
    "微信用户": "WeChat user",
    "登录": "Sign in",
    # home
    "首页": "Home",
    "你好，{name}": "Hello, {name}",
    "你已使用微信登录。": "You are signed in with WeChat.",
    "查看我的账号": "My account",
    "使用微信，一步登录": "One step to sign in with WeChat",
    "电脑上扫码，微信里一键，小程序和 App 自动登录：同一个微信，始终是同一个账号。":
        "Scan on a computer, tap inside WeChat, or sign in from the mini-program and the app: "
        "one WeChat, always one account.",
    # login
    "微信扫码登录": "Scan with WeChat to sign in",
    "微信登录二维码": "WeChat sign-in QR code",
    "打开手机微信，扫一扫上方二维码，在手机上确认后即可登录。":
        "Open WeChat on your phone, scan the code above and confirm on the phone.",
    "二维码显示不出来？在新页面中打开": "QR code not showing? Open it in a new page",
    "首次登录将自动创建账号。我们只会获取你的微信昵称和头像。":
        "Your first sign-in creates your account. We only read your WeChat nickname and avatar.",
    # login: the desktop methods and the scan-login waiting page (issue 14)
    "关注公众号登录": "Follow our official account",
    "小程序扫码登录": "Scan the mini-program code",
    "关注公众号登录二维码": "QR code of our official account",
    "小程序码": "Mini-program code",
    "等待扫码": "Waiting for a scan",
    "已扫码，请在手机上确认": "Scanned: please confirm on your phone",
    "登录成功": "Signed in",
    "二维码已失效": "This code has expired",
    "已取消": "Cancelled",
    "网络出了点问题，请刷新二维码。": "The connection failed. Please refresh the code.",
    "刷新二维码": "Refresh the code",
    "找不到这个登录二维码，或者它不是在这个浏览器中打开的。请刷新二维码。":
        "This sign-in code does not exist, or it was not opened in this browser. Please refresh the code.",
    "二维码已过期。请刷新二维码后重新扫码。": "The code has expired. Please refresh it and scan again.",
    "你在手机上取消了这次登录。想登录时请刷新二维码。":
        "You cancelled this sign-in on your phone. Refresh the code when you want to sign in.",
    "二维码已使用": "This code has been used",
    "每个登录二维码只能使用一次。请刷新二维码。": "Each sign-in code works once. Please refresh the code.",
    "这种登录方式需要浏览器启用 JavaScript。": "This way of signing in needs JavaScript in your browser.",
    "用微信扫一扫上方二维码，关注公众号后即可登录。已关注的也可以直接扫码。":
        "Scan the code above with WeChat and follow our official account to sign in. "
        "If you already follow it, just scan.",
    "用微信扫一扫上方小程序码，在小程序中确认后即可登录。":
        "Scan the mini-program code above with WeChat and confirm in the mini-program to sign in.",
    # login: the website QR card's states and the sandbox banner's link (issue 15, QR card)
    "二维码已失效，点击刷新": "This code has expired. Click to refresh",
    "正在加载二维码…": "Loading the QR code…",
    "扫描成功，请在手机上确认": "Scanned. Please confirm on your phone",
    "已确认，正在登录…": "Confirmed. Signing you in…",
    "登录服务暂时不可用，请稍后再试。": "Signing in is not possible right now. Please try again in a moment.",
    "暂时无法登录": "Signing in is unavailable",
    "重试": "Try again",
    "没有手机？点此扮演测试用户": "No phone? Play a test person here",
    # account
    "我的账号": "My account",
    "账号 ID": "Account ID",
    "注册于": "joined",
    "微信只提供了匿名资料（微信用户、灰色头像）。":
        "WeChat only provided an anonymous profile (WeChat user, grey avatar).",
    "登录方式": "Ways to sign in",
    "绑定于": "linked",
    "最近登录": "Recent sign-ins",
    "时间 (UTC)": "Time (UTC)",
    "方式": "Method",
    "结果": "Result",
    "成功": "Success",
    "退出登录": "Sign out",
    "退出所有设备": "Sign out everywhere",
    "网站扫码登录": "Website QR code",
    "公众号登录": "Official account",
    "移动应用登录": "Mobile app",
    "小程序登录": "Mini-program",
    # errors
    "重新登录": "Sign in again",
    "返回首页": "Back to home",
    "登录需在 10 分钟内完成。请重新发起登录。": "Sign-in must be completed within 10 minutes. Please start again.",
    "请在发起登录的同一个浏览器中完成登录，并允许本站使用 Cookie。":
        "Please finish signing in in the browser where you started, and allow this site's cookies.",
    "每个登录链接只能使用一次。请重新发起登录。": "Each sign-in link works once. Please start again.",
    "登录链接无效": "The sign-in link is not valid",
    "这个登录链接不完整或已被修改。请重新发起登录。":
        "This sign-in link is incomplete or was altered. Please start again.",
    "你已取消登录": "You cancelled the sign-in",
    "你在微信中拒绝了授权，没有登录。想登录时可以再试一次。":
        "You declined in WeChat, so you are not signed in. Try again whenever you like.",
    "请使用完整服务": "Please use the full service",
    "你正在查看页面快照。请点击页面底部的「使用完整服务」，然后再次登录。":
        "You are viewing a page snapshot. "
        "Tap \u201cUse full service\u201d (使用完整服务) at the bottom, then sign in again.",
    "请稍等一分钟后再试。": "Please wait a minute and try again.",
    "微信判断这次登录存在风险。请稍后再试或联系客服。":
        "WeChat considered this sign-in risky. Please try later or contact support.",
    "网站的微信登录配置有误，我们已记录这个问题。请稍后再试。":
        "The site's WeChat configuration has a problem; we have logged it. Please try later.",
    "微信暂时没有响应": "WeChat is not responding",
    "连接微信服务器失败。请稍后再试。": "We could not reach WeChat's servers. Please try again later.",
    "微信繁忙": "WeChat is busy",
    "微信服务器繁忙。请稍后再试。": "WeChat's servers are busy. Please try again later.",
    "微信授权已过期": "Your WeChat authorisation has expired",
    "请重新授权登录。": "Please authorise again.",
    "微信授权范围不足": "The WeChat authorisation is not sufficient",
    "微信登录失败": "WeChat sign-in failed",
    "微信返回了错误。请稍后再试。": "WeChat returned an error. Please try again later.",
    "账号已停用": "This account is disabled",
    "服务暂时不可用": "Service temporarily unavailable",
    "服务繁忙": "Service busy",
    "现在访问的人太多，请过一会儿再试。":
        "Too many people are using the service right now. Please try again in a moment.",
    "这个微信已绑定其他账号": "This WeChat is linked to another account",
    "这个微信身份属于另一个账号。": "This WeChat identity belongs to another account.",
    "无法解除绑定": "Cannot unlink",
    "账号至少需要保留一种登录方式。": "An account needs at least one way to sign in.",
    "找不到页面": "Page not found",
    "请选择一张 JPEG 或 PNG 图片。": "Please choose a JPEG or PNG image.",
    "这段内容没有通过微信的内容安全检查。": "This content did not pass WeChat's content check.",
    "请求被拒绝。如果你刚才提交了表单，请刷新页面后再试。":
        "The request was refused. If you just submitted a form, reload the page and try again.",
    "你访问的页面不存在。": "The page you asked for does not exist.",
    "提交的内容超过了大小限制。": "What you sent is over the size limit.",
    "请求过于频繁": "Too many requests",
    "请稍等一会儿再试。": "Please wait a moment and try again.",
    "出错了": "Something went wrong",
    "服务器遇到了问题，请稍后重试。": "The server ran into a problem. Please try again shortly.",
    # issue 3: WeChat browser, elsewhere, linking
    "使用微信账号登录": "Sign in with your WeChat account",
    "你正在微信中浏览，点击下方按钮即可登录，无需扫码。":
        "You are browsing inside WeChat: tap the button to sign in, no scanning needed.",
    "微信一键登录": "Sign in with WeChat in one tap",
    "首次登录时微信会请求获取你的昵称和头像。以后再来将自动登录。":
        "The first time, WeChat asks to share your nickname and avatar. Next time you are signed in silently.",
    "改用扫码登录": "Use the QR code instead",
    "请在微信中打开本页": "Please open this page in WeChat",
    "企业微信暂不支持微信登录。请复制链接，到微信中打开。":
        "WeCom cannot sign in with WeChat. Copy the link and open it in WeChat.",
    "请在小程序中登录，或复制链接到微信中打开。":
        "Sign in inside the mini-program, or copy the link and open it in WeChat.",
    "微信登录需要在微信内完成：手机无法扫描自己屏幕上的二维码。":
        "WeChat sign-in happens inside WeChat: a phone cannot scan a QR code on its own screen.",
    "复制本页链接": "Copy this page's link",
    "打开微信，把链接发给「文件传输助手」或任意聊天": "Open WeChat and send the link to File Transfer or any chat",
    "在微信中点开链接，一键登录": "Open the link in WeChat and sign in with one tap",
    "本页链接": "This page's link",
    "已复制": "Copied",
    "复制链接": "Copy link",
    "打开微信": "Open WeChat",
    "复制后点「打开微信」，进入「文件传输助手」聊天，粘贴链接并发送，再点开它即可登录。":
        "After copying, tap “Open WeChat”, go to the File Transfer chat, paste the link, send it, "
        "then tap it to sign in.",
    "首次登录需要你同意微信向本站提供昵称和头像。":
        "The first time, please agree that WeChat shares your nickname and avatar with this site.",
    "微信授权登录": "Agree in WeChat and sign in",
    "只需授权一次，以后再来将自动登录。": "You agree once; next time you are signed in automatically.",
    "身边有另一台设备？用它的微信扫码打开本页": "Another device nearby? Scan this with its WeChat to open the page",
    "本页链接的二维码": "QR code of this page's link",
    "你刚才授权的微信身份属于另一个账号。如果两个账号都是你的，可以把它合并到当前账号。":
        "The WeChat identity you just authorised belongs to another account. "
        "If both are yours, you can merge it into this one.",
    "合并后：": "After merging:",
    "该账号的 {n} 种登录方式将转到当前账号": "Its sign-in methods (count: {n}) move to this account",
    "该账号的登录记录将转到当前账号": "its sign-in history moves to this account",
    "该账号将被删除，无法恢复": "that account is deleted for good",
    "用该微信确认合并到当前账号": "Confirm with that WeChat and merge into this account",
    "将被删除的账号": "The account that disappears",
    "保留的账号（当前登录）": "The account that stays (signed in now)",
    "已停用": "disabled",
    "返回我的账号": "Back to my account",
    "合并前，需要用将被删除的那个账号的微信再确认一次，证明它也是你的。":
        "Before merging, confirm once more with the WeChat of the account that disappears, "
        "to prove it is yours too.",
    "如果那个账号不是你的，请取消：有人可能在让你扫描他的登录二维码。":
        "If that account is not yours, cancel: someone may be getting you to scan their sign-in QR code.",
    "已停用的账号不能合并，也不能被合并。两个账号都没有改变。":
        "A disabled account cannot be merged, nor can another account be merged into it. "
        "Neither account has changed.",
    "无法合并账号": "The accounts cannot be merged",
    "合并没有完成": "The merge did not happen",
    "只有用将被删除的那个账号的微信确认，才能合并。两个账号都没有改变。":
        "Only a confirmation with the WeChat of the account that disappears can merge it. "
        "Neither account has changed.",
    "取消": "Cancel",
    "已绑定新的登录方式。": "The new way to sign in is linked.",
    "已解除绑定。其他设备、App 和小程序上的登录都已退出，这里仍保持登录。":
        "Unlinked. You are signed out on other devices, the app and the mini-program; you stay signed in here.",
    "账号已合并。": "The accounts are merged.",
    "资料已更新。": "Profile updated.",
    "资料没有变化。": "Your profile has not changed.",
    "发现你的另一个账号": "We found another account of yours",
    "你的微信身份也关联着另一个账号。用那个微信重新授权，即可确认并合并两个账号。":
        "Your WeChat identity is also tied to another account. "
        "Authorise with that WeChat again to confirm and merge them.",
    "扫码确认并合并": "Scan to confirm and merge",
    "解除绑定": "Unlink",
    "绑定网站扫码登录": "Link website QR sign-in",
    "绑定公众号登录": "Link official-account sign-in",
    "刷新我的微信资料": "Refresh my WeChat profile",
    # phone numbers (issue 13)
    "手机号": "Phone number",
    "解除手机号绑定": "Remove phone number",
    "还没有绑定手机号。可以在小程序中一键绑定。":
        "No phone number yet. You can add one in the mini-program with one tap.",
    "已解除手机号绑定。": "The phone number is removed.",
    "已绑定": "Added",
    "已解除绑定": "Removed",
    "号码属于其他账号，未改变": "Belongs to another account; nothing changed",
    "这个手机号已绑定其他账号": "This phone number belongs to another account",
    "手机号不会从一个账号转到另一个账号。如果两个账号都是你的，请先合并账号。":
        "A phone number never moves from one account to another. If both accounts are yours, merge them first.",
    "请重新点击按钮获取手机号。": "Tap the button again to share your phone number.",
    # the account page for people, its confirmations, the merge page, the avatar menu (issue 15)
    "微信扫码": "WeChat QR code",
    "微信内登录": "Inside WeChat",
    "小程序": "Mini-program",
    "微信": "WeChat",
    "企业微信": "WeCom",
    "QQ浏览器": "QQ Browser",
    "UC浏览器": "UC Browser",
    "账号菜单": "Account menu",
    "上次使用": "last used",
    "上次登录": "Last sign-in",
    "时间": "Time",
    "设备": "Device",
    "地点": "Place",
    "失败": "Failed",
    "未知": "Unknown",
    "未知设备": "Unknown device",
    "本机/局域网": "This computer / local network",
    "地点只显示 IP 地址所在的网段，不做精确定位。":
        "Place shows only the network block of the IP address, never a precise location.",
    "还没有登录记录。": "No sign-ins yet.",
    "绑定微信扫码登录": "Link sign-in by WeChat QR code",
    "绑定微信内登录": "Link sign-in inside WeChat",
    "请在微信中打开本页绑定": "Open this page in WeChat to link it",
    "请在电脑上打开本页，用微信扫码绑定": "Open this page on a computer and scan with WeChat to link it",
    "在微信中确认并合并": "Confirm in WeChat and merge",
    "请在微信中打开本页，确认并合并。": "Open this page in WeChat to confirm and merge.",
    "解除绑定“{label}”？": "Unlink \u201c{label}\u201d?",
    "解除后不能再用这种方式登录这个账号。其他设备、App 和小程序上的登录都会退出，这里仍保持登录。":
        "You will no longer be able to sign in to this account this way. You will be signed out on other "
        "devices, the app and the mini-program; you stay signed in here.",
    "确认解除绑定": "Unlink",
    "退出所有设备？": "Sign out everywhere?",
    "所有设备、App 和小程序上的登录都会结束，包括这里。之后需要重新登录。":
        "Every sign-in ends, on all devices, the app and the mini-program, this one included. "
        "You will need to sign in again.",
    "确认退出所有设备": "Sign out everywhere",
    "已退出所有设备": "Signed out everywhere",
    "已退出所有设备。": "You are signed out everywhere.",
    "所有设备、App 和小程序上的登录都已结束。":
        "Every sign-in has ended, on all devices, the app and the mini-program.",
    # issue 15: the brand, the legal line, the footer and error titles that say what to do next
    "{name}：用微信安全登录，电脑上扫码，微信里一键登录。":
        "{name}: sign in safely with WeChat. Scan on a computer, or tap once inside WeChat.",
    "登录即表示同意": "By signing in you agree to the ",
    "《用户协议》": "User Agreement",
    "《隐私政策》": "Privacy Policy",
    "用户协议": "User Agreement",
    "隐私政策": "Privacy Policy",
    "客服：": "Customer service: ",
    "占位页面": "placeholder",
    "这是占位页面，不是{name}的正式文件。": "This is a placeholder page, not {name}'s actual document.",
    "网站上线前，请在 settings.toml 的 [brand] 中填写 {key}，指向正式的文件。":
        "Before the site goes live, set {key} in the [brand] table of settings.toml to the real document.",
    "页面地址有误，请返回重试": "This address is wrong. Please go back and try again",
    "这个地址缺少内容或被改动过。请回到上一页重新操作。":
        "This address is missing something or was altered. Please go back to the previous page and try again.",
    "账号已停用，请联系客服": "This account is disabled. Please contact customer service",
    "这个账号已被停用，无法登录。如有疑问请联系客服。":
        "This account has been disabled and cannot sign in. Contact customer service if you have questions.",
    "找不到页面，请返回首页": "Page not found. Please go back to the home page",
    "你要找的内容不存在，或已被删除。": "What you are looking for does not exist, or was deleted.",
    "二维码已失效，请刷新": "This code no longer works. Please refresh it",
    "二维码已过期，请刷新后重新扫码": "This code has expired. Refresh it and scan again",
    "请先在手机上确认登录": "Please confirm the sign-in on your phone first",
    "扫码后，请在手机微信里确认登录，这里会自动继续。":
        "After scanning, confirm the sign-in in WeChat on your phone; this page continues by itself.",
    "已取消登录，请刷新二维码": "Sign-in cancelled. Refresh the code to try again",
    "二维码已用过，请刷新": "This code was already used. Please refresh it",
    "这个微信身份属于另一个账号。如果两个账号都是你的，请合并账号。":
        "This WeChat identity belongs to another account. If both accounts are yours, please merge them.",
    "授权已过期，请重新获取手机号": "The permission has expired. Please share your phone number again",
    "已停用的账号不能合并，也不能被合并。两个账号都没有改变。如有疑问请联系客服。":
        "A disabled account cannot be merged, nor can another account be merged into it. Neither account has "
        "changed. Contact customer service if you have questions.",
    "合并没有完成，请用另一个账号的微信确认": "Not merged. Please confirm with the other account's WeChat",
    "无法解除绑定，请先绑定另一种方式": "Cannot unlink. Please link another way to sign in first",
    "图片无法使用，请换一张": "This image cannot be used. Please choose another",
    "内容未通过检查，请修改后再试": "This content was refused. Please change it and try again",
    "操作太频繁，请稍后再试": "Too many attempts. Please try again in a moment",
    "服务繁忙，请稍后再试": "The service is busy. Please try again in a moment",
    "服务暂时不可用，请稍后再试": "The service is temporarily unavailable. Please try again shortly",
    "我们的服务暂时无法处理请求，你的账号不受影响。请稍后重试。":
        "We cannot handle requests right now; your account is not affected. Please try again shortly.",
    "登录超时，请重新扫码": "Sign-in timed out. Please scan again",
    "登录超时，请重新登录": "Sign-in timed out. Please sign in again",
    "请在同一个浏览器中完成登录": "Please finish signing in in the same browser",
    "登录链接已用过，请重新登录": "This sign-in link was already used. Please sign in again",
    "登录链接无效，请重新登录": "This sign-in link is not valid. Please sign in again",
    "这次登录等得太久，或已经完成过。请重新登录。":
        "This sign-in waited too long, or was already completed. Please sign in again.",
    "授权已过期，请重新登录": "Your authorisation has expired. Please sign in again",
    "为了安全，微信的授权有有效期。请重新登录并授权。":
        "For your safety, WeChat's permission expires. Please sign in and allow it again.",
    "需要你的同意，请重新登录": "We need your permission. Please sign in again",
    "这一步需要你在微信中同意授权。请重新登录，并在微信中点「允许」。":
        "This step needs your permission in WeChat. Please sign in again and tap \u201cAllow\u201d (允许) in WeChat.",
    "微信暂时没有响应，请稍后再试": "WeChat is not responding. Please try again later",
    "微信拦截了登录，请稍后再试": "WeChat blocked this sign-in. Please try again later",
    "登录太频繁，请一分钟后再试": "Too many sign-ins. Please try again in a minute",
    "登录暂时不可用，请稍后再试": "Sign-in is temporarily unavailable. Please try again later",
    "微信繁忙，请稍后再试": "WeChat is busy. Please try again later",
    "微信登录失败，请稍后再试": "WeChat sign-in failed. Please try again later",
    "请刷新页面后再试": "Please reload the page and try again",
    "这个地址不能这样打开，请返回首页": "This address cannot be opened this way. Please go back to the home page",
    "这个地址不支持这种操作。": "This address does not accept that kind of request.",
    "内容太大，请换一个小一些的": "Too large. Please choose something smaller",
    "出错了，请稍后再试": "Something went wrong. Please try again shortly",
    # The operator console (/admin, issue 16).
    "你的微信登录已超过有效时间，执行操作前需要重新扫码确认。":
        "Your WeChat sign-in is too old: scan again to confirm before taking any action.",
    "停用原因": "Reason for disabling",
    "停用原因（记入操作记录）": "Reason (kept in the operator log)",
    "停用后无法登录，现有登录立即失效。每项操作都需要最近扫码登录，并记入操作记录。":
        "A disabled account cannot sign in and its sessions end at once. Every action needs a recent sign-in "
        "and is kept in the operator log.",
    "停用账号": "Disable account",
    "全部": "All",
    "匹配": "Matched",
    "头像待审核（未展示）：": "Avatar awaiting review (not shown): ",
    "已完成：": "Done: ",
    "微信错误码": "WeChat errcode",
    "恢复账号": "Enable account",
    "按登录方式与结果": "By method and outcome",
    "搜索": "Search",
    "搜索用户": "Search users",
    "操作": "Actions",
    "操作记录": "Operator log",
    "昵称": "Nickname",
    "昵称待审核：微信内容安全检查结果为“需人工审核”。":
        "Nickname awaiting review: WeChat's content check said \"review\".",
    "最后一种登录方式不能解除；要阻止登录，请停用账号。":
        "The last login method cannot be unlinked; to stop sign-ins, disable the account.",
    "最近小时数": "Last hours",
    "查看": "Show",
    "概览": "Overview",
    "次数": "Count",
    "正常": "Active",
    "没有失败的登录。": "No failed logins.",
    "没有找到匹配的账号。": "No matching account.",
    "没有登录方式。": "No login methods.",
    "没有绑定手机号。": "No phone number.",
    "状态": "Status",
    "用户": "User",
    "登录失败": "Failed logins",
    "登录失败时还不知道是谁，所以大多数记录不属于任何账号；账号已停用等能确认身份的失败会记在账号下。":
        "A failed login has not established who it was, so most rows belong to no account; failures that did "
        "identify the person (a disabled account) are kept under the account.",
    "登录记录": "Login history",
    "立即注销": "Delete now",
    "筛选": "Filter",
    "解除登录方式": "Unlink login method",
    "说明": "Detail",
    "账号": "Account",
    "账号 ID、昵称、openid、unionid 或手机号": "Account id, nickname, openid, unionid or phone",
    "输入账号 ID、昵称、openid、unionid 或手机号。":
        "Enter an account id, a nickname, an openid, a unionid or a phone number.",
    "运营后台": "Operator console",
    "运营操作": "Operator actions",
    "运营者": "Operator",
    "还没有运营操作。": "No operator actions yet.",
    "这段时间微信没有返回错误。": "WeChat returned no errors in this period.",
    "这段时间没有登录记录。": "No logins in this period.",
    "重新扫码确认": "Scan again to confirm",
    "表格": "Table",
    "待注销": "Closing (pending deletion)",
    "本人已申请注销，账号将于以下时间删除：": "The person closed the account. It will be deleted at:",
    "立即注销：下一次删除任务运行时删除这个账号的全部资料，无法恢复。":
        "Delete now: the next run of the deletion job deletes everything of this account, for good.",
    "错误码": "errcode",
    # --- issue 16: closing an account (注销) and downloading my data (begin) ---
    "注销账号": "Close account",
    "注销账号…": "Close account…",
    "注销账号？": "Close your account?",
    "注销后，这些内容会被删除：": "Closing the account deletes:",
    "你的昵称、头像和账号本身": "Your nickname, avatar and the account itself",
    "所有登录方式（微信扫码、微信内登录、App、小程序），以及我们保存的微信授权":
        "Every way of signing in (WeChat QR, inside WeChat, app, mini-program) and the WeChat permissions we keep",
    "绑定的手机号": "Your bound phone number",
    "登录记录会保留，但不再与你关联：其中的 IP 地址和设备信息会被清除。":
        "The sign-in history stays, no longer linked to you: its IP addresses and device details are erased.",
    "提交后，所有设备、App 和小程序上的登录立即结束。账号将于 {date} 删除，在此之前重新登录可以取消注销。":
        "You will be signed out at once on every device, app and mini-program. The account will be deleted on "
        "{date}; signing in before then lets you cancel.",
    "提交后，所有设备、App 和小程序上的登录立即结束，账号将在下一次定时清理时删除，无法恢复。":
        "You will be signed out at once on every device, app and mini-program, and the account will be deleted "
        "at the next scheduled clean-up. This cannot be undone.",
    "注销前先下载我的数据": "Download my data first",
    "确认注销": "Close my account",
    "为了保护你的账号，注销前请先用微信确认身份（扫码，或在微信中点一下）。":
        "To protect your account, please confirm it is you with WeChat first (scan, or tap inside WeChat).",
    "你的微信确认已超过几分钟，请重新确认身份后再注销。":
        "Your WeChat confirmation is more than a few minutes old. Please confirm again, then close the account.",
    "用微信确认身份": "Confirm with WeChat",
    "已申请注销": "Account closed",
    "已申请注销，所有设备上的登录都已退出。": "Your account is closed and you are signed out on every device.",
    "账号将于 {date} 删除。在此之前用微信重新登录，可以取消注销。":
        "It will be deleted on {date}. Sign in with WeChat before then to cancel.",
    "账号将在下一次定时清理时删除，无法恢复。":
        "It will be deleted at the next scheduled clean-up. This cannot be undone.",
    "你的账号将于 {date} 删除": "Your account will be deleted on {date}",
    "你已申请注销这个账号。取消注销后，账号和所有登录方式照常可用；继续注销则退出登录，账号到期删除。":
        "You asked to close this account. Cancel, and the account and every way of signing in work as before; "
        "go on, and you are signed out and the account is deleted on that date.",
    "取消注销": "Cancel closing",
    "继续注销并退出": "Keep closing and sign out",
    "我的数据": "My data",
    "下载我的数据": "Download my data",
    "下载我们保存的关于你的全部信息（JSON 文件）：资料、登录方式、登录记录和手机号。不含任何密钥或令牌。":
        "Download everything we keep about you (a JSON file): profile, ways of signing in, sign-in history and "
        "phone number. It holds no keys or tokens.",
    "下载（含完整手机号）": "Download (with the full phone number)",
    "用微信确认后下载完整手机号": "Confirm with WeChat to download the full phone number",
    "删除你的账号、登录方式和手机号。提交后有 {days} 天可以反悔。":
        "Deletes your account, ways of signing in and phone number. You have {days} days to change your mind.",
    "删除你的账号、登录方式和手机号，无法恢复。":
        "Deletes your account, ways of signing in and phone number. This cannot be undone.",
    "已取消注销，账号照常可用。": "Closing cancelled: your account works as before.",
    "已用微信确认身份。": "Confirmed with WeChat.",
    "账号正在注销中": "This account is being closed",
    "这个账号已申请注销。如需继续使用，请先取消注销。":
        "This account is being closed. To keep using it, cancel the closing first.",
    "请先用微信确认身份": "Please confirm it is you with WeChat first",
    "为了保护你的账号，这一步需要你刚刚用微信扫码或确认登录过。":
        "To protect your account, this step needs a WeChat scan or confirmation from the last few minutes.",
    "这不是当前账号的微信": "This WeChat is not this account's",
    "你用来确认的微信不属于当前登录的账号，没有做任何改变。请用这个账号的微信重新确认。":
        "The WeChat you confirmed with does not belong to the account signed in here. Nothing was changed. "
        "Please confirm with this account's WeChat.",
    # --- issue 16 (end) ---
}
