#!/usr/bin/env bash
# Debian's chromium, for the chat page's browser tests (tests/test_chat_page.py drives it with
# playwright). `playwright install` would download its own browser build, which fails offline.
# Only `make test` needs it: `make run` serves the page to whatever browser the user has.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
