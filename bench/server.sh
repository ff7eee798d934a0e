#!/usr/bin/env bash
# bench/server: aloftd under wrk on loopback, next to nginx on the same
# machine as the floor of HTTP handling (issue 5 "Benchmark"):
#   (a) GET /update on the 304 path (the device already runs the current
#       release) with the HTTPUpdate headers of a real ESP32 and 10,000
#       distinct MACs (a wrk Lua script cycles them; every check-in is
#       written to the device inventory), next to nginx answering
#       `return 304` to the same requests;
#   (b) downloading a 1 MB release (GET /firmware/<sha256>.bin), next to
#       nginx serving the same file statically (sendfile);
#   (c) the same release as /update's 200 to devices on an older version
#       (HTTPUpdate headers, the MACs cycling: each one recorded as offered),
#       next to the same nginx run.
# Prints req/s, MB/s, p99 latency and the ratios to nginx, on SQLite and on
# PostgreSQL (a throwaway server on a loopback port, as the user nobody when
# run as root; skipped when Debian's postgresql is not installed). Targets:
# (a) >= 0.5x nginx's rate; (b) and (c) >= 0.9x nginx's throughput.
#
# aloftd gets --threads $BENCH_THREADS and nginx as many worker processes
# (default: the number of CPUs); wrk runs $BENCH_CONNS connections
# (default 32) in one thread for $BENCH_SECONDS seconds (default 8) per
# run. Each comparison alternates nginx and aloftd for $BENCH_ROUNDS rounds
# (default 3) and compares the medians: on a shared machine a single run
# of each, minutes apart, measures the neighbours' load more than the
# servers. Every process is started here, in the foreground, and stopped
# by its PID; the temporary directory is removed at the end.
#
# usage: bench/server.sh [BUILD_DIR]    (default: build; run by bench/run.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:-build}
aloft=$build/bin/aloft
aloftd=$build/bin/aloftd
threads=${BENCH_THREADS:-$(nproc)}
conns=${BENCH_CONNS:-32}
seconds=${BENCH_SECONDS:-8}
rounds=${BENCH_ROUNDS:-3}
macs=10000

for exe in "$aloft" "$aloftd"; do
    if [ ! -x "$exe" ]; then
        echo "bench/server.sh: $exe is not built (make bench builds it)" >&2
        exit 1
    fi
done
nginx=$(command -v nginx || echo /usr/sbin/nginx)
for tool in wrk "$nginx" curl python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "bench/server.sh: $tool not found; run scripts/deps.sh" >&2
        exit 1
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aloft-bench-server.XXXXXX")
chmod 755 "$tmp" # nginx's and postgres's workers may run as another user
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

wait_http() { # URL: until it answers at all
    for _ in $(seq 200); do
        curl -s -o /dev/null --noproxy '*' "$1" && return 0
        sleep 0.05
    done
    echo "bench/server.sh: nothing answers at $1" >&2
    return 1
}

# The release: a 1 MB image, the version the devices run.
"$aloft" image make --chip esp32s3 --project bench --version 1.0.0 --size 1048576 -o "$tmp/fw.bin" >/dev/null
sha=$(sha256sum "$tmp/fw.bin" | cut -d' ' -f1)
md5=$(md5sum "$tmp/fw.bin" | cut -d' ' -f1)

# The HTTPUpdate check-in of an ESP32 already on 1.0.0, MACs cycling through
# $macs (each wrk thread starts at its own offset).
cat >"$tmp/update.lua" <<EOF
local n = 0
local macs = $macs
request = function()
    n = (n + 1) % macs
    local mac = string.format("24:0A:C4:%02X:%02X:%02X", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
    return wrk.format("GET", "/update?dev=bench&ver=1.0.0", {
        ["User-Agent"] = "ESP32-http-Update",
        ["Connection"] = "keep-alive",
        ["Cache-Control"] = "no-cache",
        ["x-ESP32-STA-MAC"] = mac,
        ["x-ESP32-AP-MAC"] = mac,
        ["x-ESP32-free-space"] = "1310720",
        ["x-ESP32-sketch-size"] = "1048576",
        ["x-ESP32-sketch-md5"] = "$md5",
        ["x-ESP32-chip-size"] = "4194304",
        ["x-ESP32-sdk-version"] = "v5.1.2",
        ["x-ESP32-mode"] = "sketch",
    })
end
EOF
# The same devices one version behind: each check-in is a 200 with the file.
sed -e 's/ver=1.0.0/ver=0.9.0/' -e "s/$md5/00000000000000000000000000000000/" "$tmp/update.lua" >"$tmp/offer.lua"

# nginx: return 304 for /update, the same file statically for /firmware/.
nginx_port=$(bench_free_port)
mkdir -p "$tmp/nginx/firmware" "$tmp/nginx/logs"
cp "$tmp/fw.bin" "$tmp/nginx/firmware/$sha.bin"
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"
cat >"$tmp/nginx/nginx.conf" <<EOF
$user_line
worker_processes $threads;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$nginx_port;
        location = /update { return 304; }
        location /firmware/ { root $tmp/nginx; }
    }
}
EOF
"$nginx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx/logs/stderr" &
pids+=($!)
wait_http "http://127.0.0.1:$nginx_port/update"

# wrk URL [SCRIPT]: "req/s MB/s p99_ms" (and a warning for errors)
measure() {
    local out
    out=$(wrk -t1 -c"$conns" -d"${seconds}s" --latency ${2:+-s "$2"} "$1")
    echo "$out" >>"$tmp/wrk.log"
    if echo "$out" | grep -q 'Non-2xx or 3xx\|Socket errors'; then
        echo "bench/server.sh: errors from $1:" >&2
        echo "$out" | grep 'Non-2xx or 3xx\|Socket errors' >&2
    fi
    echo "$out" | awk '
        function ms(v) {
            if (v ~ /us$/) return v * 0.001
            if (v ~ /ms$/) return v + 0
            if (v ~ /s$/) return v * 1000
            return v + 0
        }
        function mb(v) {
            if (v ~ /GB$/) return v * 1024
            if (v ~ /MB$/) return v + 0
            if (v ~ /KB$/) return v / 1024
            if (v ~ /B$/) return v / 1048576
            return v + 0
        }
        /^Requests\/sec:/ { rps = $2 }
        /^Transfer\/sec:/ { mbs = mb($2) }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%.0f %.1f %.2f\n", rps, mbs, p99 }'
}

nginx_update_url="http://127.0.0.1:$nginx_port/update?dev=bench&ver=1.0.0"
nginx_file_url="http://127.0.0.1:$nginx_port/firmware/$sha.bin"

# pair KIND NGINX_URL ALOFTD_URL [SCRIPT [ALOFTD_SCRIPT]]: $rounds rounds of
# nginx then aloftd; prints nginx's median run, aloftd's median run (by
# req/s for KIND rate, MB/s for throughput), then every run's figure of each.
pair() {
    local kind=$1 nurl=$2 aurl=$3 script=${4:-} n=() a=() i
    local ascript=${5:-$script}
    for ((i = 0; i < rounds; i++)); do
        n+=("$(measure "$nurl" "$script")")
        a+=("$(measure "$aurl" "$ascript")")
    done
    local col=1
    [ "$kind" = rate ] || col=2
    median() { printf '%s\n' "$@" | sort -k"$col","$col" -g | sed -n "$(((${#} + 1) / 2))p"; }
    runs() { printf '%s\n' "$@" | cut -d' ' -f"$col" | paste -sd' '; }
    median "${n[@]}"
    median "${a[@]}"
    runs "${n[@]}"
    runs "${a[@]}"
}

row() { # LABEL "rps mbs p99" [NGINX "rps mbs p99" KIND]
    local label=$1 r=$2 base=${3:-} kind=${4:-}
    set -- $r
    local rps=$1 mbs=$2 p99=$3 ratio="" verdict=""
    if [ -n "$base" ]; then
        set -- $base
        if [ "$kind" = rate ]; then
            ratio=$(awk -v a="$rps" -v b="$1" 'BEGIN { printf "%.2fx", a / b }')
            verdict=$(awk -v a="$rps" -v b="$1" 'BEGIN { print (a / b >= 0.5 ? "met (>= 0.5x)" : "MISSED (>= 0.5x)") }')
        else
            ratio=$(awk -v a="$mbs" -v b="$2" 'BEGIN { printf "%.2fx", a / b }')
            verdict=$(awk -v a="$mbs" -v b="$2" 'BEGIN { print (a / b >= 0.9 ? "met (>= 0.9x)" : "MISSED (>= 0.9x)") }')
        fi
    fi
    printf "%-40s %10s %9s %9s %8s  %s\n" "$label" "$rps" "$mbs" "$p99" "$ratio" "$verdict"
}

# run_aloftd NAME DB: start aloftd on it, upload the release, measure (a) and (b)
run_aloftd() {
    local name=$1 db=$2 data=$tmp/aloftd-$1
    mkdir -p "$data"
    "$aloftd" --data "$data" --db "$db" --listen 127.0.0.1:0 --threads "$threads" \
        --admin-token-file "$data/token" >"$data/log" 2>&1 &
    local pid=$!
    pids+=($pid)
    local url=""
    for _ in $(seq 200); do
        url=$(sed -n 's|.*serving on \(http://[0-9.:]*\)/.*|\1|p' "$data/log")
        [ -n "$url" ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$url" ]; then
        echo "bench/server.sh: aloftd ($name) did not start:" >&2
        cat "$data/log" >&2
        exit 1
    fi
    curl -sf --noproxy '*' -o /dev/null -H "Authorization: Bearer $(cat "$data/token")" \
        -H 'Content-Type: application/octet-stream' --data-binary "@$tmp/fw.bin" "$url/api/firmware?platform=bench"
    local code
    code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -H 'User-Agent: ESP32-http-Update' \
        -H 'x-ESP32-STA-MAC: 24:0A:C4:00:00:01' "$url/update?dev=bench&ver=1.0.0")
    [ "$code" = 304 ] || { echo "bench/server.sh: /update answers $code, not 304" >&2; exit 1; }
    local update file
    update=$(pair rate "$nginx_update_url" "$url/update?dev=bench&ver=1.0.0" "$tmp/update.lua")
    file=$(pair throughput "$nginx_file_url" "$url/firmware/$sha.bin")
    local offer
    offer=$(pair throughput "$nginx_file_url" "$url/update?dev=bench&ver=0.9.0" "" "$tmp/offer.lua")
    local devices
    devices=$(curl -s --noproxy '*' -H "Authorization: Bearer $(cat "$data/token")" "$url/api/devices?platform=bench" |
        python3 -c 'import json, sys; j = json.load(sys.stdin); print(len(j.get("devices", j) if isinstance(j, dict) else j))' \
            2>/dev/null || echo "?")
    local nu au nf af
    { read -r nu; read -r au; } <<<"$update"
    { read -r nf; read -r af; } <<<"$file"
    local no ao
    { read -r no; read -r ao; } <<<"$offer"
    row "(a) nginx return 304" "$nu"
    row "(a) aloftd /update 304, $name" "$au" "$nu" rate
    row "(b) nginx static 1 MB file" "$nf"
    row "(b) aloftd 1 MB download, $name" "$af" "$nf" throughput
    row "(c) nginx static 1 MB file" "$no"
    row "(c) aloftd /update 200 (1 MB), $name" "$ao" "$no" throughput
    echo "    req/s of each run (a): nginx $(sed -n 3p <<<"$update"), aloftd $(sed -n 4p <<<"$update")"
    echo "    MB/s of each run (b): nginx $(sed -n 3p <<<"$file"), aloftd $(sed -n 4p <<<"$file")"
    echo "    MB/s of each run (c): nginx $(sed -n 3p <<<"$offer"), aloftd $(sed -n 4p <<<"$offer")"
    echo "    ($devices devices in the inventory after (a))"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

printf '\nbench/server: aloftd (--threads %s) and nginx (%s workers) on loopback, wrk -t1 -c%s -d%ss each,\n' \
    "$threads" "$threads" "$conns" "$seconds"
printf '%s rounds of nginx then aloftd; the median run of each\n' "$rounds"
printf '(a) GET /update, 304, HTTPUpdate headers, %s distinct MACs; (b) GET of a 1 MB release;\n' "$macs"
printf '(c) GET /update, 200 with the 1 MB release, the same MACs one version behind\n\n'
printf "%-40s %10s %9s %9s %8s  %s\n" "" "req/s" "MB/s" "p99 ms" "ratio" "target"
run_aloftd sqlite "sqlite:$tmp/aloftd-sqlite/aloft.db"
if bench_pg_start; then
    run_aloftd postgresql "$pg_url"
else
    echo "(PostgreSQL: not measured, no server could be started; see scripts/deps.sh)"
    cat "$tmp/pg.log" 2>/dev/null | tail -5 >&2 || true
fi
