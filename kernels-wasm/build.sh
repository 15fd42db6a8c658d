#!/usr/bin/env bash
# Builds the two kernel binaries from one source:
#   pkg/crumb_kernels_relaxed.wasm  SIMD128 + relaxed SIMD (relaxed swizzle, int8 dot products)
#   pkg/crumb_kernels.wasm          baseline SIMD128, for engines that do not validate the first
# and the benchmark's: pkg/crumb_kernels_bench.wasm, the relaxed build plus the baselines of
# bench/baseline/baseline.rs (cargo feature "bench"; the runtime never loads it).
# Both link against an imported shared memory (atomics) so a worker pool can run one module
# instance per worker over the same weights; the loader picks the first that
# WebAssembly.validate accepts (runtime/kernels/wasm.ts).
#
# Toolchain: Debian bookworm's rustc-web/cargo-web with rust-web-src (the standard library's
# source) and lld. Debian ships no prebuilt wasm32 library for that compiler, so `core` is
# compiled here from the source into a sysroot under target/ (about 15 s, once per compiler
# version), beside a two-function `compiler_builtins` crate (src-sysroot/). A rustup toolchain
# earlier on PATH has no wasm32 target: /usr/bin/rustc is called explicitly.
set -euo pipefail
cd "$(dirname "$0")"
RUSTC=/usr/bin/rustc
CARGO=/usr/bin/cargo
MAX_MEMORY=4294967296 # 4 GiB: the wasm32 ceiling
TARGET=wasm32-unknown-unknown
BASE_FEATURES="+simd128,+atomics,+bulk-memory,+mutable-globals"

[ -x "$RUSTC" ] || { echo "no $RUSTC: apt-get install rustc-web cargo-web rust-web-src lld" >&2; exit 1; }
version=$("$RUSTC" --version | awk '{print $2}')
src="/usr/src/rustc-$version/library"
[ -f "$src/core/src/lib.rs" ] || { echo "no standard library source at $src: apt-get install rust-web-src" >&2; exit 1; }
command -v wasm-ld >/dev/null || { echo "no wasm-ld: apt-get install lld" >&2; exit 1; }

# The sysroot: core and compiler_builtins for wasm32, rebuilt when the compiler changes.
sysroot="$PWD/target/sysroot-$version"
lib="$sysroot/lib/rustlib/$TARGET/lib"
if [ ! -f "$lib/.complete" ]; then
  echo "building core $version for $TARGET into $sysroot" >&2
  rm -rf "$sysroot"
  mkdir -p "$lib"
  RUSTC_BOOTSTRAP=1 "$RUSTC" --edition 2024 --crate-type rlib --crate-name core --target "$TARGET" \
    -C opt-level=3 -C panic=abort -C codegen-units=1 -C target-feature="$BASE_FEATURES" \
    -Z force-unstable-if-unmarked --cap-lints allow \
    --remap-path-prefix="$src=/rustc-src" \
    "$src/core/src/lib.rs" --out-dir "$lib"
  RUSTC_BOOTSTRAP=1 "$RUSTC" --edition 2021 --crate-type rlib --crate-name compiler_builtins --target "$TARGET" \
    --sysroot "$sysroot" -C opt-level=3 -C panic=abort -C target-feature="$BASE_FEATURES" --cap-lints allow \
    --remap-path-prefix="$PWD=/crumb/kernels-wasm" \
    src-sysroot/compiler_builtins.rs --out-dir "$lib"
  touch "$lib/.complete"
fi

# One cargo build per variant (separate target directories: their flags differ).
build() { # <target features> <output name> [cargo feature]
  local dir="$PWD/target/$2"
  CARGO_TARGET_DIR="$dir" RUSTC="$RUSTC" RUSTFLAGS="--sysroot $sysroot -C target-feature=$1 \
 -C linker=wasm-ld -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=$MAX_MEMORY \
 -C link-arg=--no-check-features -C link-arg=--export=__stack_pointer \
 --remap-path-prefix=$PWD=/crumb/kernels-wasm --remap-path-prefix=$HOME=/home" \
    "$CARGO" build --release --target "$TARGET" --quiet ${3:+--features "$3"}
  mkdir -p pkg
  cp "$dir/$TARGET/release/crumb_kernels.wasm" "pkg/$2.wasm"
  echo "built kernels-wasm/pkg/$2.wasm ($(wc -c < "pkg/$2.wasm") bytes, rustc $version)"
}
build "$BASE_FEATURES,+relaxed-simd" crumb_kernels_relaxed
build "$BASE_FEATURES" crumb_kernels
build "$BASE_FEATURES,+relaxed-simd" crumb_kernels_bench bench
# The toolchain the committed binaries come from: CI compares bytes only under the same one.
{ "$RUSTC" --version; wasm-ld --version; } > pkg/toolchain.txt
