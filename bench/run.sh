#!/usr/bin/env bash
# Run the benchmarks and print their tables. Instruction counts come from
# valgrind's callgrind, so they repeat exactly from run to run; wall times
# follow for reference. Then bench/push against a real aloft-node, and the
# fleet, server, scale, rollout, flood, pull, espota, delta and BLE benchmarks.
#
# usage: bench/run.sh [BUILD_DIR] [all|ingest]   (default: build all; `make bench` builds it first)
#        ingest: only bench/ingest (the callgrind table and its wall times) and bench/verify
set -euo pipefail

build=${1:-build}
what=${2:-all}
case $what in
all | ingest) ;;
*)
    echo "usage: bench/run.sh [BUILD_DIR] [all|ingest]" >&2
    exit 2
    ;;
esac
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

out=$build/bench/callgrind.ingest
log=$build/bench/ingest.log

# callgrind NAME FUNCTION...: run bench_ingest once under callgrind, counting
# only inside the given functions (and what they call), into $out.NAME.txt:
# the inclusive instruction counts per function.
callgrind() {
    local name=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$out.$name.out" --collect-atstart=no \
        "${@/#/--toggle-collect=}" "$bin" --once >"$log" 2>"$log.valgrind" || {
        cat "$log" "$log.valgrind" >&2
        echo "bench/run.sh: bench_ingest failed under valgrind" >&2
        exit 1
    }
    callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$out.$name.out" >"$out.$name.txt"
}

# The push phase erases and programs too: it is counted in a run of its own,
# so each phase's erase and program (the flash wrappers) are its own.
callgrind core bench_phase_sha256 bench_phase_update
callgrind push bench_phase_push
callgrind signed bench_phase_push_signed

# The table: the counts of both runs (which run a line is from: its file),
# the image's facts from bench_ingest's log.
awk -v logfile="$log" -v pushfile="$out.push.txt" -v signedfile="$out.signed.txt" '
    BEGIN {
        while ((getline line < logfile) > 0) {
            split(line, f, " ")
            if (f[1] == "image") image = f[2]
            if (f[1] == "bytes") bytes = f[2]
            if (f[1] == "chunk") chunk = f[2]
            if (f[1] == "push_chunk") push_chunk = f[2]
            if (f[1] == "signed_bytes") signed_bytes = f[2]
        }
    }
    function count(s) { gsub(/,/, "", s); return s + 0 }
    { run = FILENAME == pushfile ? "push" : FILENAME == signedfile ? "signed" : "core" }
    /:bench_phase_sha256 \[/  { sha = count($1) }
    /:bench_phase_update \[/  { upd = count($1) }
    /:bench_phase_push \[/    { push = count($1) }
    /:bench_phase_push_signed \[/ { signed = count($1) }
    /:aloft_agent_sig_check \[/ { sigcheck = count($1) }
    /:bench_flash_erase \[/   { erase[run] = count($1) }
    /:bench_flash_program \[/ { prog[run] = count($1) }
    function row(label, n, tail) {
        printf "%-44s %14d %11.2f %18s%s\n", label, n, n / bytes, sprintf("%.2fx", n / sha), tail
    }
    END {
        if (!bytes || !sha || !upd || !push || !signed) {
            print "bench/run.sh: could not read the callgrind counts" > "/dev/stderr"
            exit 1
        }
        target = 1.15      # the update path, to SHA-256 alone
        push_target = 1.05 # the push path, to the update path
        signed_target = 1.10 # the signed push path, per byte, to SHA-256 alone
        core = upd - erase["core"] - prog["core"]
        agent = push - erase["push"] - prog["push"]
        printf "\nbench/ingest: %s, %d bytes in %d-byte chunks, 4 MB POSIX flash (in memory)\n", image, bytes, chunk
        printf "instructions counted by valgrind --tool=callgrind (inclusive, repeatable)\n\n"
        printf "%-44s %14s %11s %18s\n", "phase", "instructions", "instr/byte", "ratio to SHA-256"
        row("SHA-256 alone (aloft_sha256_*)", sha, "")
        row("update begin/write/end, everything", upd, "")
        row("  flash erase (POSIX port, whole slot)", erase["core"], "")
        row("  flash program (POSIX port)", prog["core"], "")
        row("  update path without erase/program", core,
            sprintf("   target <= %.2fx: %s", target, core / sha <= target ? "met" : "MISSED"))
        row(sprintf("push POST /ota, %d-byte chunks, everything*", push_chunk), push, "")
        row("  flash erase (whole slot, otadata sector)", erase["push"], "")
        row("  flash program (image, otadata entry)", prog["push"], "")
        row("  push path without erase/program", agent,
            sprintf("   %.3fx the update path, target <= %.2fx: %s", agent / core, push_target,
                    agent / core <= push_target ? "met" : "MISSED"))
        sagent = signed - erase["signed"] - prog["signed"]
        sbyte = sagent / signed_bytes
        printf "%-44s %14d %11.2f %18s\n", "push of it signed (RSA-3072), verification on*", signed, signed / signed_bytes,
            sprintf("%.2fx", signed / signed_bytes / (sha / bytes))
        printf "%-44s %14d %11.2f %18s\n", "  the signature check (read-back, parse, verify)", sigcheck,
            sigcheck / signed_bytes, sprintf("%.3fx", sigcheck / signed_bytes / (sha / bytes))
        printf "%-44s %14d %11.2f %18s   target <= %.2fx: %s\n", "  signed push path without erase/program", sagent,
            sbyte, sprintf("%.3fx", sbyte / (sha / bytes)), signed_target,
            sbyte / (sha / bytes) <= signed_target ? "met" : "MISSED"
        printf "\n* through the agent (aloft_push_begin/body/end/abort, Bearer PSK checked), same image;\n"
        printf "  its end also sets the boot slot (reads otadata, erases one of its sectors and programs a\n"
        printf "  32-byte entry), which the update line does not\n"
        printf "  the signed image is %d bytes (padded to 4 KB, then the 4 KB signature sector); its per-byte\n", signed_bytes
        printf "  ratio is to SHA-256 alone per byte; the signature is checked by OpenSSL in this port (the\n"
        printf "  ROM RSA-PSS routine on an ESP32), counted in the signature check\n"
    }' "$out.core.txt" "$out.push.txt" "$out.signed.txt"

printf '\n'
"$bin" | sed -n '/^wall time/,$p'

# bench/verify: a signed 1 MB image checked on the host, per scheme
"$build/bench/bench_verify"
if [ "$what" = ingest ]; then
    exit 0
fi

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

# bench/server: aloftd under wrk next to nginx, /update's 304 path, a
# 1 MB download and /update's 200 with it, on SQLite and PostgreSQL (its own processes, not under valgrind)
"$(dirname "$0")/server.sh" "$build"

# bench/scale: check-ins per second with no rollout, with a 50 % rollout's
# first contacts, and with its offered devices coming back, on SQLite and
# PostgreSQL (its own processes, not under valgrind)
"$(dirname "$0")/scale.sh" "$build"

# bench/rollout: 100,000 simulated devices through a staged rollout with
# auto-advance, on one aloftd with SQLite and two sharing PostgreSQL (its
# own processes; several minutes)
"$(dirname "$0")/rollout.sh" "$build"

# bench/flood: /update's latency for devices while one address floods
# aloftd with 6,000 idle and trickling connections (its own processes)
"$(dirname "$0")/flood.sh" "$build"

# bench/pull: 64 devices pull a 1 MB release from one aloftd, triggered at
# once over MQTT (a broker, aloftd and the nodes of its own; not under valgrind)
"$(dirname "$0")/pull.sh" "$build"

# bench/espota: 1 MB to one device over HTTP and over ArduinoOTA, same link
"$(dirname "$0")/espota.sh" "$build"

# bench/delta: patch sizes on a real ESP-IDF pair next to xz, zstd, bsdiff and
# xdelta3, the decoder's RAM, its instructions per byte against SHA-256
"$(dirname "$0")/delta.sh" "$build"

# bench/ble: 1 MB over the simulated BLE link at MTU 23, 185, 247 and 517:
# the extended mode and esp32-ble-ota's protocol next to the link's floor (its
# own processes, not under valgrind)
"$(dirname "$0")/ble.sh" "$build"
