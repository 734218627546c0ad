#!/usr/bin/env bash
# System packages the test suite needs beyond Python's: Debian's Chromium for the browser tests
# (Playwright drives /usr/bin/chromium; its own browser downloads are not used).
set -eu
if ! command -v chromium >/dev/null 2>&1; then
  echo "test-setup: installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
echo "test-setup: $(chromium --version 2>/dev/null || echo 'chromium missing')"
