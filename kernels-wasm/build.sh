#!/usr/bin/env bash
# Builds kernels-wasm/pkg/crumb_kernels.wasm with Debian's rustc/cargo (Rust 1.63 has the
# wasm32 std from libstd-rust-dev-wasm32; a rustup toolchain earlier on PATH does not).
# One binary for every runtime: SIMD128 + shared memory (atomics) so a worker pool can run
# one module instance per worker over the same weights.
set -euo pipefail
cd "$(dirname "$0")"
MAX_MEMORY=4294967296 # 4 GiB: the wasm32 ceiling
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_DIR="$PWD/target"
export RUSTFLAGS="-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals \
 -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=$MAX_MEMORY \
 -C link-arg=--no-check-features -C link-arg=--export=__stack_pointer \
 --remap-path-prefix=$PWD=/crumb/kernels-wasm --remap-path-prefix=$HOME=/home"
/usr/bin/cargo build --release --target wasm32-unknown-unknown --quiet
mkdir -p pkg
cp target/wasm32-unknown-unknown/release/crumb_kernels.wasm pkg/crumb_kernels.wasm
echo "built kernels-wasm/pkg/crumb_kernels.wasm ($(wc -c < pkg/crumb_kernels.wasm) bytes)"
