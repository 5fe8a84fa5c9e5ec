#!/usr/bin/env bash
# Installs everything this project needs on a fresh Debian machine (idempotent; fast when done before).
# Used by the README's two commands and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: docker.io + docker-registry (real image builds, pinned-digest path), openssh-server
# (sshd -t of the image's SSH config). The endpoint tests use vLLM's CPU build from PyPI (no compiler).
APT_PACKAGES=(docker.io docker-registry openssh-server git)
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

# --with-pulumi: also install the Pulumi CLI (needed for `invoke up/preview/destroy/outputs`) with
# Pulumi's official installer, unless one is already on PATH. Not used in CI (tests run Pulumi
# programs under pulumi.runtime.set_mocks and need no CLI).
if [ "${1:-}" = "--with-pulumi" ] && ! command -v pulumi >/dev/null 2>&1 && [ ! -x "$HOME/.pulumi/bin/pulumi" ]; then
  echo "bootstrap: installing the Pulumi CLI into ~/.pulumi/bin"
  curl -fsSL https://get.pulumi.com | sh -s -- --silent
  echo "bootstrap: add ~/.pulumi/bin to PATH (invoke finds it there already)"
fi
