#!/usr/bin/env bash
# Installs what sftc needs: its npm packages and, when Dawn finds no WebGPU adapter, Mesa's
# lavapipe (a CPU Vulkan driver) from Debian bookworm-backports. With --test, also Debian's
# PyTorch, which some tests compare against (DDP training, merged weights, large shards).
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
for_tests=false
[ "${1:-}" = "--test" ] && for_tests=true
is_debian_root() { [ "$(id -u)" = 0 ] && grep -q 'bookworm' /etc/os-release 2>/dev/null; }
export DEBIAN_FRONTEND=noninteractive
apt_updated=false
apt_install() {
  $apt_updated || { apt-get update -q >/dev/null; apt_updated=true; }
  apt-get install -y -q "$@" >/dev/null
}

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "sftc setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Bundle the CLI so it starts fast (bin/sftc.js falls back to the sources when they are newer).
npm run --silent build

if $for_tests && ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  if is_debian_root; then
    echo "sftc setup: installing Debian's PyTorch for the tests that compare against it"
    # after lavapipe from backports (newer elfutils), torch's dependencies must come from there too
    apt_install python3-torch 2>/dev/null || apt_install -t bookworm-backports python3-torch
  else
    echo "sftc setup: tests that compare against PyTorch will be skipped; to run them: apt-get install python3-torch" >&2
  fi
fi

if node scripts/probe-gpu.js 2>/dev/null; then
  exit 0
fi

echo "sftc setup: no WebGPU adapter found; installing Mesa lavapipe (CPU Vulkan) from bookworm-backports"
if ! is_debian_root; then
  cat >&2 <<'MSG'
sftc setup: cannot install lavapipe automatically (needs root on Debian 12 "bookworm").
Install a Vulkan driver yourself, then run this script again. On Debian 12, as root:
  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list
  apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1
Elsewhere: install Mesa >= 25 with lavapipe (package names vary), or a GPU's Vulkan driver.
MSG
  exit 1
fi

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list
  apt_updated=false
fi
apt_install -t bookworm-backports mesa-vulkan-drivers libvulkan1
node scripts/probe-gpu.js
