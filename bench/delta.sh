#!/usr/bin/env bash
# bench/delta: one table for delta updates on a real pair of ESP-IDF
# releases (esp32s3-csi-node 0.4.3 -> 0.6.4 in the shared fixtures, or OLD
# NEW): the patch size as a share of the new image for aloft and for the
# tools Debian ships (xz of the whole image, zstd --patch-from, bsdiff,
# xdelta3), each beside the figure the issue measured for it and for the
# tools Debian does not ship; the decoder's RAM (scripts/size.sh's figures for
# ESP32-C3 when its cross compilers are here); the decoder's instructions per
# byte of the result, counted by callgrind, next to SHA-256 of the same
# bytes; the time to update a simulated device over a 1 Mbit/s link and
# over the simulated BLE link (aloft-node --ble, its default timing, ATT MTU
# 247: BENCH_DELTA_BLE_MTU) with the whole image and with a patch. Timings
# are for reference: a benchmark never fails on one.
#
# usage: bench/delta.sh [BUILD_DIR] [OLD NEW]   (default: build; run by bench/run.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:-build}
fixtures=${ALOFT_FIXTURES:-$(dirname "$0")/../../shared/fixtures}
old=${2:-$fixtures/esp-idf/esp32s3-csi-node-v0.4.3.bin}
new=${3:-$fixtures/esp-idf/esp32s3-csi-node-v0.6.4.bin}
aloft=$build/bin/aloft
bench=$build/bench/bench_delta
bench_need "$aloft" "$bench"
for tool in xz zstd bsdiff xdelta3 valgrind callgrind_annotate; do
    command -v $tool >/dev/null || { echo "$me: $tool not found; run scripts/deps.sh" >&2; exit 1; }
done
bench_tmp delta

size() { stat -c %s "$1"; }
n=$(size "$new")
pct() { awk -v a="$1" -v b="$n" 'BEGIN { printf "%.2f", 100 * a / b }'; }
secs() { # COMMAND...: run it, print its wall seconds
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }'
}

t_aloft=$(secs "$aloft" delta make "$old" "$new" -o "$tmp/aloft.delta" -q)
"$aloft" delta apply "$old" "$tmp/aloft.delta" -o "$tmp/aloft.out"
cmp -s "$tmp/aloft.out" "$new" || bench_fail "aloft's patch does not give the new image back"
t_xz=$(secs sh -c "xz -9e -k -c '$new' > '$tmp/new.xz'")
t_zstd=$(secs zstd -q -19 --long=31 --patch-from="$old" "$new" -o "$tmp/zstd.patch" -f)
t_bsdiff=$(secs bsdiff "$old" "$new" "$tmp/bsdiff.patch")
t_xdelta=$(secs xdelta3 -e -9 -f -s "$old" "$new" "$tmp/xdelta.patch")

printf '\nbench/delta: %s (%d bytes) -> %s (%d bytes)\n\n' "$(basename "$old")" "$(size "$old")" "$(basename "$new")" "$n"
printf '%-44s %10s %9s %8s %11s  %s\n' "tool / configuration" "patch B" "% of NEW" "make s" "issue's %" "decoder memory"
row() { printf '%-44s %10s %9s %8s %11s  %s\n' "$@"; }
row "aloft delta (this run)" "$(size "$tmp/aloft.delta")" "$(pct "$(size "$tmp/aloft.delta")")" "$t_aloft" "<= 11.00" \
    "8 KB target (see below); reads OLD from flash"
row "whole image, xz -9e" "$(size "$tmp/new.xz")" "$(pct "$(size "$tmp/new.xz")")" "$t_xz" "60.08" "64 MiB dictionary"
row "zstd -19 --long --patch-from" "$(size "$tmp/zstd.patch")" "$(pct "$(size "$tmp/zstd.patch")")" "$t_zstd" "15.33" \
    "new-image window + old image"
row "bsdiff 4.3 (bzip2)" "$(size "$tmp/bsdiff.patch")" "$(pct "$(size "$tmp/bsdiff.patch")")" "$t_bsdiff" "13.48" \
    "both images in RAM, ~11 MB of bzip2"
row "xdelta3 -9" "$(size "$tmp/xdelta.patch")" "$(pct "$(size "$tmp/xdelta.patch")")" "$t_xdelta" "-" "source window + target window"
row "esp_delta_ota (detools bsdiff + heatshrink)" "-" "-" "-" "16.77" "~1.2 KB (not in Debian)"
row "detools sequential bsdiff + lzma" "-" "-" "-" "12.41" "8 MiB dictionary (not in Debian)"
row "HDiffPatch -SD lzma2, 64 KiB dict and step" "-" "-" "-" "11.42" "~200 KB (not in Debian)"
row "HDiffPatch -SD lzma2-9-16m" "-" "-" "-" "11.36" "~375 KB (not in Debian)"

# The decoder's RAM as scripts/size.sh measures it for the MCUs.
printf '\ndecoder RAM: '
if [ -z "${BENCH_NO_SIZE:-}" ] && ram=$("$(dirname "$0")/../scripts/size.sh" --out "$tmp/size" 2>/dev/null | grep '^delta decoder RAM'); then
    printf '\n%s\n' "$ram"
else
    printf 'state %s B on this host (scripts/size.sh, which needs the cross compilers, gives the MCU figures)\n' \
        "$("$bench" --once | awk '$1 == "state" {print $2}')"
fi

# Decode instructions per byte of the result, against SHA-256 of the same bytes.
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" --collect-atstart=no \
    --toggle-collect=bench_phase_sha256 --toggle-collect=bench_phase_sha256_old --toggle-collect=bench_phase_decode "$bench" --once "$old" "$new" \
    >"$tmp/log" 2>"$tmp/valgrind.log" || bench_fail "bench_delta failed under valgrind"
callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$tmp/cg.out" >"$tmp/cg.txt"
awk -v logfile="$tmp/log" '
    BEGIN { while ((getline l < logfile) > 0) { split(l, f, " "); v[f[1]] = f[2] } }
    function count(s) { gsub(/,/, "", s); return s + 0 }
    /:bench_phase_sha256_old \[/ { base = count($1); next }
    /:bench_phase_sha256 \[/ { sha = count($1) }
    /:bench_phase_decode \[/ { dec = count($1) }
    END {
        if (!sha || !dec) { print "bench/delta.sh: could not read the callgrind counts" > "/dev/stderr"; exit 1 }
        n = v["new"]
        printf "\ndecoding the patch (%d B, fed in %d-byte chunks), instructions counted by callgrind, per byte of NEW\n\n", v["patch"], v["chunk"]
        printf "%-52s %14s %11s %10s\n", "phase", "instructions", "instr/byte", "to SHA-256"
        printf "%-52s %14d %11.2f %10s\n", "SHA-256 of NEW alone", sha, sha / n, "1.00x"
        printf "%-52s %14d %11.2f %9.2fx\n", "decode, everything (base check, tokens, result hash)", dec, dec / n, dec / sha
        printf "%-52s %14d %11.2f %9.2fx\n", "  of which the base check (SHA-256 of OLD)", base, base / n, base / sha
        printf "%-52s %14d %11.2f %9.2fx\n", "  of which the SHA-256 of the result", sha, sha / n, 1
        printf "%-52s %14d %11.2f %9.2fx\n", "  the tokens (range decoder, model, copies)", dec - base - sha, (dec - base - sha) / n, (dec - base - sha) / sha
    }' "$tmp/cg.txt"
printf '\n'
"$bench" "$old" "$new" | sed -n '/^wall time/,$p'

# Updating a simulated device over a 1 Mbit/s link (125,000 bytes/s, ESP32
# flash timing): the whole NEW, then a patch from OLD (aloft deploy
# --delta-from), each to a fresh aloft-node that runs OLD; wall time from the
# deploy's start until the device is verified after its restart.
node=$build/bin/aloft-node
bench_need "$node"
ip=127.0.0.141
port=${BENCH_PORT:-17242}
psk=bench-delta-psk
link() { # full|delta -> "upload_s wall_s bytes ok"
    local how=$1 out=$tmp/deploy-$1.json code=0 t0 t1 pid extra=()
    rm -f "$tmp/node-$how.img"
    "$node" --create --flash-size 8M --firmware "$old" --flash "$tmp/node-$how.img" --psk "$psk" \
        --listen "$ip:$port" --flash-timing esp32 --link-rate 125000 </dev/null >"$tmp/node-$how.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    bench_wait_for "$tmp/node-$how.log" "http: serving" "$pid" "node $ip:$port (BENCH_PORT taken?)"
    [ "$how" = delta ] && extra=(--delta-from "$old")
    t0=$(date +%s.%N)
    "$aloft" deploy "$new" "$ip:$port" --psk "$psk" --timeout 120 --json "${extra[@]}" >"$out" || code=$?
    t1=$(date +%s.%N)
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local ok=FAILED
    [ $code = 0 ] && [ "$(bench_updated "$out")" = 1 ] && ok=ok
    local up bytes
    up=$(tr -d ' \t\n' <"$out" | grep -o '"upload_seconds":[0-9.]*' | head -1 | cut -d: -f2)
    bytes=$(tr -d ' \t\n' <"$out" | grep -o '"upload_bytes":[0-9]*' | head -1 | cut -d: -f2)
    awk -v u="${up:-0}" -v a="$t0" -v b="$t1" -v n="${bytes:-0}" -v ok="$ok" 'BEGIN { printf "%.2f %.2f %d %s\n", u, b - a, n, ok }'
}
read -r full_up full_wall full_bytes full_ok < <(link full)
read -r delta_up delta_wall delta_bytes delta_ok < <(link delta)

# The same over the simulated BLE link: aloft-node --ble at its default
# timing (30 ms connection interval, 4 packets per event), ATT MTU 247, the
# extended mode; aloft ble push NEW, then aloft ble push NEW --delta-from OLD
# (which makes the patch first). upload: from the node's "update begins" to
# its "verified into" (the node's log, polled every 50 ms); push: the whole
# command, until the device was verified over HTTP after its restart.
ble_mtu=${BENCH_DELTA_BLE_MTU:-247}
when() { # FILE TEXT: the time FILE first holds TEXT (polled every 50 ms, up to 20 min)
    local i=0
    until grep -q "$2" "$1" 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
        [ $i -lt 24000 ] || return 1
    done
    date +%s.%N
}
over_ble() { # full|delta -> "upload_s wall_s bytes ok"
    local how=$1 out=$tmp/ble-$1.out log=$tmp/ble-node-$1.log code=0 t0 t1 pid hport bport extra=() w1 w2
    hport=$(bench_free_port)
    bport=$(bench_free_port)
    "$node" --create --flash-size 8M --firmware "$old" --flash "$tmp/ble-$how.img" --psk "$psk" \
        --listen "$ip:$hport" --ble "$ip:$bport" --ble-mtu "$ble_mtu" --flash-timing esp32 </dev/null >"$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    bench_wait_for "$log" "http: serving" "$pid" "node $ip:$hport"
    bench_wait_for "$log" "ble: advertising" "$pid" "node $ip:$bport"
    [ "$how" = delta ] && extra=(--delta-from "$old")
    when "$log" "update begins" >"$tmp/ble-$how.t0" &
    w1=$!
    when "$log" "verified into" >"$tmp/ble-$how.t1" &
    w2=$!
    pids+=("$w1" "$w2")
    t0=$(date +%s.%N)
    "$aloft" ble push "$new" "$ip:$bport" --psk "$psk" --mtu "$ble_mtu" --status-port "$hport" --timeout 120 \
        "${extra[@]}" >"$out" 2>"$tmp/ble-$how.err" || code=$?
    t1=$(date +%s.%N)
    sleep 0.2
    kill "$pid" "$w1" "$w2" 2>/dev/null || true
    wait "$pid" "$w1" "$w2" 2>/dev/null || true
    local ok=FAILED bytes
    [ $code = 0 ] && grep -q ': updated: ' "$out" && ok=ok
    bytes=$(grep -o 'sending a [0-9]*-byte patch' "$out" | grep -o '[0-9]*' || true)
    awk -v u0="$(cat "$tmp/ble-$how.t0")" -v u1="$(cat "$tmp/ble-$how.t1")" -v a="$t0" -v b="$t1" \
        -v n="${bytes:-$n}" -v ok="$ok" \
        'BEGIN { printf "%.2f %.2f %d %s\n", (u0 && u1 ? u1 - u0 : 0), b - a, n, ok }'
}
read -r bfull_up bfull_wall bfull_bytes bfull_ok < <(over_ble full)
read -r bdelta_up bdelta_wall bdelta_bytes bdelta_ok < <(over_ble delta)

printf '\nupdating one simulated device (aloft-node, ESP32 flash timing), OLD -> NEW, over a 1 Mbit/s link and over\n'
printf 'the simulated BLE link (30 ms interval, 4 packets per event, MTU %s, the extended mode)\n' "$ble_mtu"
printf '(upload: 1 Mbit/s, the request until the device replied; BLE, the device'"'"'s "update begins" until it verified\n'
printf ' the image; whole-slot erase and decode included. deploy/push: until the device was verified after its\n'
printf ' restart; for the patch, aloft deploy / aloft ble push makes it first, %s s here)\n\n' "$t_aloft"
xfull() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'; }
printf '%-36s %12s %10s %10s %8s  %s\n' way "bytes sent" "upload s" "deploy s" "x full" result
printf '%-36s %12s %10s %10s %8s  %s\n' "1 Mbit/s, whole image (POST /ota)" "$full_bytes" "$full_up" "$full_wall" "1.00x" "$full_ok"
printf '%-36s %12s %10s %10s %8s  %s\n' "1 Mbit/s, delta patch (--delta-from)" "$delta_bytes" "$delta_up" "$delta_wall" \
    "$(xfull "$delta_up" "$full_up")" "$delta_ok"
printf '%-36s %12s %10s %10s %8s  %s\n' "BLE, whole image (aloft ble push)" "$bfull_bytes" "$bfull_up" "$bfull_wall" \
    "1.00x" "$bfull_ok"
printf '%-36s %12s %10s %10s %8s  %s\n' "BLE, delta patch (--delta-from)" "$bdelta_bytes" "$bdelta_up" "$bdelta_wall" \
    "$(xfull "$bdelta_up" "$bfull_up")" "$bdelta_ok"
printf 'each pays the update writer'"'"'s whole-slot erase before the first byte is written (the 3 MB ota slot of\n'
printf 'the 8 MB table: 47 block erases, ~7 s with ESP32 timings) and the programming of the whole NEW;\n'
printf 'the patch shortens the time on the air.\n'
[ "$full_ok" = ok ] && [ "$delta_ok" = ok ] || bench_fail "a deploy over the throttled link failed"
[ "$bfull_ok" = ok ] && [ "$bdelta_ok" = ok ] || bench_fail "a push over the simulated BLE link failed (see $tmp/ble-*)"
