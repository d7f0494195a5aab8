#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit and property tests, and
# the end-to-end tests that start sluiced in veth labs (those need root; with
# CI set they fail rather than skip when they cannot run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

require_cargo
# Chromium: the bench smoke test opens its HTML report headless and checks
# that every plot rendered; nginx-light is the baseline of `run http`.
install_packages "${SLUICE_PACKAGES[@]}" chromium nginx-light
if [ "$(id -u)" -ne 0 ]; then
    echo "note: not root: the end-to-end tests (veth labs, XDP) will say so and skip" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo build (the bench smoke test runs the built sluiced)"
cargo build --workspace --quiet
echo "== cargo test"
cargo test --workspace
