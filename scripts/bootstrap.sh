#!/usr/bin/env bash
# Sets this project up on a fresh machine (idempotent; fast when done before). Used by the README's
# two commands and by .ci/run.
#
#   bash scripts/bootstrap.sh                 test mode: the project + test tools in ./.venv; as root on
#                                             Debian also the Debian packages the image/registry/SSH tests use
#   bash scripts/bootstrap.sh --with-pulumi   deploy mode: the project in ./.venv and the Pulumi CLI in
#                                             ~/.pulumi/bin; installs no system package, only checks the host
#
# What it never does: install into the system Python (PEP 668 refuses that on Debian 12 anyway), touch a
# Docker engine that is already there (Debian's docker.io would replace Docker CE and the NVIDIA Container
# Toolkit setup that GPU hosts run), or leave a daemon it installed enabled or listening.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=test
[ "${1:-}" = "--with-pulumi" ] && MODE=deploy
PY=${PYTHON:-python3}
VENV=.venv

say() { printf 'bootstrap: %s\n' "$*"; }

check_python() {
  if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    say "needs Python >= 3.11; '$PY' is $("$PY" -V 2>&1 || echo missing). Fix: install python3.11+ and run PYTHON=/path/to/python3.11 bash scripts/bootstrap.sh" >&2
    exit 1
  fi
}

docker_engine_present() {
  command -v dockerd >/dev/null 2>&1 || command -v containerd >/dev/null 2>&1 && return 0
  dpkg-query -W -f='${Status}\n' docker-ce moby-engine containerd.io 2>/dev/null | grep -q "install ok installed"
}

# Test tools from Debian (root only): docker.io + docker-registry (real image builds, the pinned-digest
# path), openssh-server (sshd -t of the image's SSH config). Daemons are kept from starting while apt
# installs them (policy-rc.d) and disabled afterwards, so nothing listens once this returns.
install_test_packages() {
  command -v dpkg-query >/dev/null 2>&1 || { say "not Debian: skipping test packages (the tests that need them skip)"; return; }
  local want=(docker-registry openssh-server git) missing=()
  if docker_engine_present; then
    say "a Docker engine is already installed: leaving it alone (not installing docker.io)"
  else
    want=(docker.io "${want[@]}")
  fi
  for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" != 0 ]; then
    say "not root, skipping Debian packages: ${missing[*]} (the tests that need them will skip and say so)" >&2
    return 0
  fi
  say "apt-get install ${missing[*]} (daemons not started)"
  local policy=${BOOTSTRAP_POLICY_RC:-/usr/sbin/policy-rc.d} own_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && own_policy=1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ((own_policy)) && rm -f "$policy"
  if command -v systemctl >/dev/null 2>&1; then
    local units=()
    for pkg in "${missing[@]}"; do
      case "$pkg" in
        docker.io) units+=(docker.service docker.socket containerd.service) ;;
        docker-registry) units+=(docker-registry.service) ;;
        openssh-server) units+=(ssh.service ssh.socket) ;;
      esac
    done
    ((${#units[@]})) && systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
  fi
}

install_project() {
  [ -x "$VENV/bin/python" ] || { say "creating the project virtualenv $VENV"; "$PY" -m venv "$VENV"; }
  local extra='.[dev]'
  [ "$MODE" = deploy ] && extra='.'
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$extra"
}

# Pulumi's official installer, into ~/.pulumi/bin (the user's home, no root), unless a CLI is there.
install_pulumi() {
  if command -v pulumi >/dev/null 2>&1 || [ -x "$HOME/.pulumi/bin/pulumi" ]; then return; fi
  say "installing the Pulumi CLI into ~/.pulumi/bin"
  if ! curl -fsSL https://get.pulumi.com | sh -s -- --silent; then
    say "could not install the Pulumi CLI: downloading Pulumi's installer from https://get.pulumi.com failed (curl's message above; offline, or a proxy?). The project itself is installed in $VENV; only invoke up|preview|destroy|outputs|config need Pulumi. Other ways (README, Requirements): on macOS 'brew install pulumi/tap/pulumi'; anywhere, unpack a release archive from https://github.com/pulumi/pulumi/releases so that ~/.pulumi/bin/pulumi exists; then run this command again." >&2
    exit 1
  fi
  say "add ~/.pulumi/bin to PATH (invoke finds it there already)"
}

check_host_docker() {
  if ! command -v docker >/dev/null 2>&1; then
    say "no docker CLI here: the local Docker target needs Docker Engine + the NVIDIA Container Toolkit (see README, Requirements); remote stacks (docker.host: ssh://...) need none here" >&2
  fi
}

# Sourced (tests/core/test_bootstrap.py): define the steps, run none.
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

check_python
if [ "$MODE" = test ]; then install_test_packages; fi
install_project
if [ "$MODE" = deploy ]; then install_pulumi; check_host_docker; fi
say "done: the project is in $VENV (activate it with 'source $VENV/bin/activate' for the invoke commands)"
