#!/usr/bin/env bash
# Installs everything NexusCore needs to build, test and benchmark, from
# Debian 12 packages only. Idempotent; safe to run twice. Needs root (or sudo).
set -euo pipefail

PKGS=(
  build-essential pkg-config make gcc clang lld llvm
  libbpf-dev bpftool linux-libc-dev
  liburing-dev libmicrohttpd-dev libjansson-dev libxxhash-dev libzstd-dev
  libcmocka-dev libclang-rt-14-dev libjemalloc-dev zlib1g-dev nettle-dev libdeflate-dev
  wabt wasi-libc
  nats-server libnats-dev
  prometheus
  redis-server libhiredis-dev
  curl python3 iproute2 strace procps
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian's prometheus and redis packages start services on install; the
# project starts its own instances on its own ports, so stop the stock ones.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl stop prometheus redis-server 2>/dev/null || true
fi
echo "install-deps: done"
