#!/usr/bin/env bash
# Runs the kernel parity tests under Bun for linux-aarch64 through qemu-user, so the WASM
# kernels are checked on an ARM64 engine (JavaScriptCore's ARM64 SIMD lowering) on any x86 host.
# Needs qemu-user and libc6-arm64-cross (Debian; .ci/run installs them). The aarch64 Bun comes
# from npm (@oven/bun-linux-aarch64, same version as the project's Bun), fetched with `npm pack`
# into .crumb-cache/ so package.json, the lock file and node_modules stay untouched.
# CRUMB_QUICK_TESTS=1 shrinks the shape sweeps (every export still runs) because emulation is slow.
# Usage: bash test/arm64/run.sh [bun test args...]   (default: runtime/kernels runtime/threads)
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v qemu-aarch64 >/dev/null || { echo "qemu-aarch64 not found: apt-get install qemu-user" >&2; exit 1; }
sysroot=/usr/aarch64-linux-gnu
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || { echo "$sysroot missing: apt-get install libc6-arm64-cross" >&2; exit 1; }

version=$(npx --no-install bun --version)
dir=".crumb-cache/arm64/bun-$version"
bun="$dir/package/bin/bun"
if [ ! -x "$bun" ]; then
  mkdir -p "$dir"
  echo "fetching @oven/bun-linux-aarch64@$version" >&2
  tarball=$(cd "$dir" && npm pack --silent "@oven/bun-linux-aarch64@$version" | tail -n 1)
  tar -xzf "$dir/$tarball" -C "$dir"
  rm -f "$dir/$tarball"
  chmod +x "$bun"
fi

echo "ARM64: $(qemu-aarch64 -L "$sysroot" "$bun" --version) under $(qemu-aarch64 --version | head -n 1)" >&2
[ $# -gt 0 ] || set -- runtime/kernels runtime/threads
CRUMB_QUICK_TESTS=1 exec qemu-aarch64 -L "$sysroot" "$bun" test "$@"
