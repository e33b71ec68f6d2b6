#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (a browser download by Playwright fails offline here).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "wxlogin: installing chromium and CJK fonts for the browser tests" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk fonts-noto-color-emoji >/dev/null
else
  echo "wxlogin: browser tests need Debian's chromium (sudo apt-get install chromium fonts-noto-cjk fonts-noto-color-emoji); they will be skipped" >&2
fi
