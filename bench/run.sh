#!/usr/bin/env bash
# Run the benchmarks and print their tables. Instruction counts come from
# valgrind's callgrind, so they repeat exactly from run to run; wall times
# follow for reference. Then bench/push against a real aloft-node.
#
# usage: bench/run.sh [BUILD_DIR]      (default: build; `make bench` builds it first)
set -euo pipefail

build=${1:-build}
bin=$build/bench/bench_ingest
if [ ! -x "$bin" ]; then
    echo "bench/run.sh: $bin is not built (make bench builds it)" >&2
    exit 1
fi
for tool in valgrind callgrind_annotate; do
    if ! command -v $tool >/dev/null; then
        echo "bench/run.sh: $tool not found; run scripts/deps.sh" >&2
        exit 1
    fi
done

out=$build/bench/callgrind.ingest.out
log=$build/bench/ingest.log
# Count only inside the two measured phases (and what they call).
valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
    --toggle-collect='bench_phase_*' "$bin" --once >"$log" 2>"$log.valgrind" || {
    cat "$log" "$log.valgrind" >&2
    echo "bench/run.sh: bench_ingest failed under valgrind" >&2
    exit 1
}

# Inclusive instruction counts of the measured functions and the flash wrappers.
callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$out" | awk -v logfile="$log" '
    BEGIN {
        while ((getline line < logfile) > 0) {
            split(line, f, " ")
            if (f[1] == "image") image = f[2]
            if (f[1] == "bytes") bytes = f[2]
            if (f[1] == "chunk") chunk = f[2]
        }
    }
    function count(s) { gsub(/,/, "", s); return s + 0 }
    /:bench_phase_sha256 \[/  { sha = count($1) }
    /:bench_phase_update \[/  { upd = count($1) }
    /:bench_flash_erase \[/   { erase = count($1) }
    /:bench_flash_program \[/ { prog = count($1) }
    END {
        if (!bytes || !sha || !upd) {
            print "bench/run.sh: could not read the callgrind counts" > "/dev/stderr"
            exit 1
        }
        target = 1.15
        core = upd - erase - prog
        printf "\nbench/ingest: %s, %d bytes in %d-byte chunks, 4 MB POSIX flash (in memory)\n", image, bytes, chunk
        printf "instructions counted by valgrind --tool=callgrind (inclusive, repeatable)\n\n"
        printf "%-44s %14s %11s %18s\n", "phase", "instructions", "instr/byte", "ratio to SHA-256"
        printf "%-44s %14d %11.2f %18s\n", "SHA-256 alone (aloft_sha256_*)", sha, sha / bytes, "1.00x"
        printf "%-44s %14d %11.2f %18s\n", "update begin/write/end, everything", upd, upd / bytes, sprintf("%.2fx", upd / sha)
        printf "%-44s %14d %11.2f %18s\n", "  flash erase (POSIX port, whole slot)", erase, erase / bytes, sprintf("%.2fx", erase / sha)
        printf "%-44s %14d %11.2f %18s\n", "  flash program (POSIX port)", prog, prog / bytes, sprintf("%.2fx", prog / sha)
        verdict = core / sha <= target ? "met" : "MISSED"
        printf "%-44s %14d %11.2f %18s   target <= %.2fx: %s\n", "  update path without erase/program", core, core / bytes,
            sprintf("%.2fx", core / sha), target, verdict
    }'

printf '\n'
"$bin" | sed -n '/^wall time/,$p'

# bench/push: a real ~1 MB image POSTed to one aloft-node with curl (wall
# times, and the node's memory from /proc; it runs its own processes, so not
# under valgrind).
push=$build/bench/bench_push
if [ ! -x "$push" ] || [ ! -x "$build/bin/aloft-node" ]; then
    echo "bench/run.sh: $push or $build/bin/aloft-node is not built (make bench builds them)" >&2
    exit 1
fi
"$push" --node "$build/bin/aloft-node"

# bench/fleet: aloft deploy to 1..64 simulated devices (it runs its own
# processes, so not under valgrind)
"$(dirname "$0")/fleet.sh" "$build"

# bench/server: aloftd under wrk next to nginx, /update's 304 path and a
# 1 MB download, on SQLite and PostgreSQL (its own processes, not under valgrind)
"$(dirname "$0")/server.sh" "$build"

# bench/pull: 64 devices pull a 1 MB release from one aloftd, triggered at
# once over MQTT (a broker, aloftd and the nodes of its own; not under valgrind)
"$(dirname "$0")/pull.sh" "$build"
