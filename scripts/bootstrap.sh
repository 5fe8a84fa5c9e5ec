#!/usr/bin/env bash
# Installs everything this project needs on a fresh Debian machine (idempotent; fast when done before).
# Used by the README's two commands and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: docker.io (image build tests), cmake + g++ (llama-server for endpoint tests).
APT_PACKAGES=(docker.io cmake g++ git)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: not root, skipping apt packages: ${missing[*]} (the tests that need them will say so)" >&2
  fi
fi

python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
