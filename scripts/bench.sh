#!/usr/bin/env bash
# Runs every published benchmark (release build) and regenerates
# BENCHMARKS.md from their results: each run writes
# bench/reports/NAME/{results.json,report.md,report.html}, and
# `sluice-bench report` puts bench/reports/preamble.md and every run's
# Markdown together. About 20 minutes on a 2-core VM; run it on a quiet
# machine.
#
#   bash scripts/bench.sh            # every run, then BENCHMARKS.md
#   bash scripts/bench.sh --render   # only BENCHMARKS.md, from the JSON there
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

RUNS=(udp-echo tcp-rr tcp-rr-sweep tcp-crr tcp-crr-kernel http http-close conn-scale conn-scale-1m)
OUT=bench/reports

args_of() {
    case "$1" in
        udp-echo) echo "run udp-echo --rounds 3 --duration 5" ;;
        tcp-rr) echo "run tcp-rr --rounds 3 --duration 5" ;;
        tcp-rr-sweep) echo "run tcp-rr --rounds 1 --duration 3 --rate sweep --targets sluice,kernel" ;;
        tcp-crr) echo "run tcp-crr --conns 16 --rounds 3 --duration 5" ;;
        tcp-crr-kernel) echo "run tcp-crr --generator kernel --conns 16 --rounds 3 --duration 5" ;;
        http) echo "run http --rounds 3 --duration 5" ;;
        http-close) echo "run http --close --rate none --conns 16 --rounds 3 --duration 5" ;;
        conn-scale) echo "run conn-scale --conns 1000,10000,100000" ;;
        conn-scale-1m) echo "run conn-scale --conns 1000000" ;;
    esac
}

require_cargo
if [ "${1:-}" != "--render" ]; then
    require_root "the benchmarks"
    install_packages "${SLUICE_PACKAGES[@]}" nginx-light
    echo "== building (release)"
    cargo build --release --workspace --quiet
    failed=()
    for r in "${RUNS[@]}"; do
        echo "== $r: sluice-bench $(args_of "$r")"
        # Results of an earlier run are not mixed in: each run starts clean.
        rm -rf "${OUT:?}/$r"
        # shellcheck disable=SC2046
        if ! target/release/sluice-bench $(args_of "$r") --label "$r" --report "$OUT/$r"; then
            failed+=("$r")
        fi
    done
    [ ${#failed[@]} -eq 0 ] || echo "warning: these runs failed (their results, if any, are still rendered): ${failed[*]}" >&2
else
    cargo build --release -p sluice-bench --quiet
fi
files=()
for r in "${RUNS[@]}"; do
    [ -f "$OUT/$r/results.json" ] && files+=("$OUT/$r/results.json")
done
[ ${#files[@]} -gt 0 ] || die "no results under $OUT: run without --render first"
target/release/sluice-bench report --preamble "$OUT/preamble.md" --markdown BENCHMARKS.md "${files[@]}"
