#!/usr/bin/env bash
# The accessibility test (tests/browser/test_accessibility.py) runs axe-core from npm inside Chromium.
# Installed once into .cache/axe (ignored by git); a no-op when it is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
AXE_DIR=.cache/axe
AXE_VERSION=${AXE_VERSION:-4.10.3}
if [ -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ]; then exit 0; fi
if ! command -v npm >/dev/null; then
  echo "wxlogin: the accessibility test needs npm (sudo apt-get install npm) for axe-core; it will be skipped" >&2
  exit 0
fi
echo "wxlogin: installing axe-core $AXE_VERSION into $AXE_DIR for the accessibility test" >&2
mkdir -p "$AXE_DIR"
npm install --prefix "$AXE_DIR" --no-audit --no-fund --no-save --silent "axe-core@$AXE_VERSION" \
  || echo "wxlogin: npm could not install axe-core; the accessibility test will be skipped" >&2
