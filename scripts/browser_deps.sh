#!/bin/sh
# The browser tests' one system dependency: Debian's Chromium at /usr/bin/chromium (Playwright
# cannot download its own browser here). Installed when missing and we are root; otherwise the
# browser tests skip and say so. Never fails the build by itself.
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } ||
        echo "could not install chromium: the browser tests will skip" >&2
else
    echo "no /usr/bin/chromium and not root: the browser tests will skip" >&2
fi
exit 0
