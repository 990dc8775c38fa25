#!/usr/bin/env bash
# Installs Xvfb (Debian package `xvfb`) when missing, for the sumo-gui tests.
# The tests start and stop their own Xvfb server; this only makes sure the binary exists.
set -u
command -v Xvfb >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb >/dev/null) \
    || echo "ensure_xvfb: could not install xvfb; gui tests will be skipped" >&2
else
  echo "ensure_xvfb: Xvfb missing and not root; gui tests will be skipped" >&2
fi
exit 0
