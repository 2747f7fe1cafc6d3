#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver, the headless browser that tests/test_qac_demo.py
# drives, unless both are already there (CI runs this before the tests; needs root or sudo).
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver
