#!/usr/bin/env bash
# Installs what building, running and testing need: the pinned Rust toolchain
# (rust-toolchain.toml), QEMU and cargo-fuzz. Idempotent; quick when
# everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

# 1. The pinned toolchain. RUSTUP_AUTO_INSTALL=0 on some machines, so install
#    explicitly; `rustup toolchain install` with no name reads rust-toolchain.toml.
if ! command -v rustup >/dev/null 2>&1; then
    say "rustup not found: install it from https://rustup.rs, then run this again"
    exit 1
fi
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if rustup run "$channel" rustc --version >/dev/null 2>&1 &&
    rustup component list --toolchain "$channel" --installed 2>/dev/null | grep -q '^rust-src' &&
    rustup component list --toolchain "$channel" --installed 2>/dev/null | grep -q '^clippy' &&
    rustup target list --toolchain "$channel" --installed 2>/dev/null | grep -q '^x86_64-unknown-none' &&
    rustup target list --toolchain "$channel" --installed 2>/dev/null | grep -q '^x86_64-unknown-linux-musl'; then
    say "toolchain $channel present"
else
    say "installing toolchain $channel (components and target from rust-toolchain.toml)"
    rustup toolchain install
fi

# 2. QEMU, musl-gcc (musl-tools) and glibc's static libraries (libc6-dev:
#    `gcc -static` needs libc.a): the static C test programs the kernel runs
#    as init are built with both C libraries.
missing=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
glibc_a=$(gcc -print-file-name=libc.a 2>/dev/null || true)
[ -f "$glibc_a" ] || missing+=(libc6-dev)
if [ ${#missing[@]} -eq 0 ]; then
    say "$(qemu-system-x86_64 --version | head -n 1); musl-gcc and glibc's libc.a present"
elif command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "installing ${missing[*]} with apt-get"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
else
    say "missing: ${missing[*]}, and this machine has no apt-get:"
    say "install QEMU's x86_64 system emulator, musl-gcc and glibc's static libraries with your package manager, then run this again"
    exit 1
fi
# 3. cargo-fuzz, for scripts/fuzz.sh (the address-space fuzzer). Only if
#    missing: it builds from crates.io in a minute or two.
if command -v cargo-fuzz >/dev/null 2>&1; then
    say "$(cargo fuzz --version)"
else
    say "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
say "ready: 'cargo run' boots the kernel, 'cargo test' runs every test"
