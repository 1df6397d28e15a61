#!/usr/bin/env bash
# An archive that lets a checkout run on a Linux machine of this one's architecture without
# network access (a cluster's GPU node, say): this Node binary, the npm packages with only this
# platform's Dawn build (no TypeScript compiler or type packages: nothing at run time reads them)
# and, where apt can fetch it, the Vulkan loader (libvulkan1) unpacked. Made here, with network:
#
#   bash scripts/offline-bundle.sh FILE.tar.xz
#
# On the offline machine, in a checkout of the same commit (the GPU's Vulkan driver installed):
#
#   tar -xJf FILE.tar.xz && source .offline/env.sh && node scripts/probe-gpu.js
#
# env.sh puts the bundled Node first on PATH, links node_modules to the bundled packages where the
# checkout has none, and adds the bundled loader to the library path where the system has none.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# = 1 ] || { echo "usage: bash scripts/offline-bundle.sh FILE.tar.xz" >&2; exit 2; }
archive=$(realpath -m "$1")
mkdir -p "$(dirname "$archive")"
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
platform=$(node -p 'process.platform + "-" + process.arch')

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/.offline/bin" "$stage/.offline/lib"
cp "$(readlink -f "$(command -v node)")" "$stage/.offline/bin/node"
# from where node_modules resolves to: a worktree's node_modules may be a link to another checkout's
mkdir -p "$stage/.offline/node_modules"
tar -C "$(readlink -f node_modules)" -cf - --exclude='./typescript' --exclude='./@types' . | tar -xf - -C "$stage/.offline/node_modules"
# Dawn's builds for the other platforms
find "$stage/.offline/node_modules/webgpu/dist" -mindepth 1 -maxdepth 1 ! -name "$platform" -exec rm -rf {} +
if command -v apt-get >/dev/null && (cd "$stage" && apt-get download libvulkan1 >/dev/null 2>&1); then
  dpkg -x "$stage"/libvulkan1_*.deb "$stage/loader"
  cp -a "$stage"/loader/usr/lib/*/libvulkan.so.1* "$stage/.offline/lib/"
  echo "offline-bundle: Vulkan loader $(ls "$stage/.offline/lib" | head -1) included"
else
  echo "offline-bundle: no Vulkan loader included (apt-get could not fetch libvulkan1); the offline machine needs its own" >&2
fi
cat >"$stage/.offline/env.sh" <<'ENV'
# Source from the checkout's root: the bundled Node, npm packages and Vulkan loader.
offline_root=$(pwd)/.offline
export PATH="$offline_root/bin:$PATH"
[ -e node_modules ] || ln -s .offline/node_modules node_modules
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' && [ -n "$(ls "$offline_root/lib" 2>/dev/null)" ]; then
  export LD_LIBRARY_PATH="$offline_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
ENV
tar -C "$stage" -cf - .offline | xz -T0 -6 >"$archive"
echo "offline-bundle: $archive ($(du -h "$archive" | cut -f1)) for $platform, Node $(node --version)"
