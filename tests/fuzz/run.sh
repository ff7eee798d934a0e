#!/bin/sh
# A bounded libFuzzer run of every parser of untrusted input (DESIGN.md, Tests):
# build each harness with clang, seed its corpus, run it, fail on any crash.
#
# usage: tests/fuzz/run.sh [BUILD_DIR]      (default: build)
#   Harnesses go to BUILD_DIR/fuzz/, with seeds/, corpus/, logs/ and, for a
#   crash, artifacts/<harness>-crash-<sha1>: reproduce with
#   BUILD_DIR/fuzz/<harness> <that file>.
#   BUILD_DIR/bin/aloft, when built, synthesises image and LittleFS seeds.
#   Each harness also starts from the corpus kept in the repository,
#   tests/fuzz/corpus/<harness>/.
# CTest runs it as fuzz_smoke (a few seconds each); make fuzz runs each
# harness for FUZZ_TIME (10 minutes) and keeps what it found (FUZZ_KEEP).
# environment:
#   FUZZ_RUNS       runs per harness (default: each harness's own, below;
#                   -1: no limit but FUZZ_TIME)
#   FUZZ_TIME       seconds per harness at most (default 20)
#   FUZZ_KEEP       1: merge the inputs that found new coverage into
#                   tests/fuzz/corpus/<harness>/ (libFuzzer -merge=1)
#   FUZZ_JOBS       harnesses run at once (default 2)
#   FUZZ_SEED       libFuzzer's random seed (default: a new one each run)
#   FUZZ_ONLY       names of the harnesses to run (default: all)
#   FUZZ_SKIP       names of harnesses to leave out
#   ALOFT_FIXTURES  the shared fixtures (default: ../shared/fixtures)
#   CLANG           the compiler (default: clang)
# exit status: 0 every harness ran clean, 1 one crashed or did not build,
# 77 no clang with libFuzzer here (CTest counts that as skipped).
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
OUT=$BUILD/fuzz
FIXTURES=${ALOFT_FIXTURES:-$SRC/../shared/fixtures}
CLANG=${CLANG:-clang}
ALOFT=$BUILD/bin/aloft
JOBS=${FUZZ_JOBS:-2}
TIME=${FUZZ_TIME:-20}

# name, runs, max_len: a few seconds each on one core.
HARNESSES="image:20000:9000 part:150000:3200 part_csv:150000:2048 littlefs:60000:65537 devstatus:300000:17000 trigger:300000:4096 mqtt_cmd:300000:4096 push:30000:8192 espota:30000:8192 delta:30000:8192 mdns:100000:1500"

say() { echo "fuzz: $*"; }

command -v "$CLANG" >/dev/null 2>&1 || { say "$CLANG not found (scripts/deps.sh installs it)"; exit 77; }

selected() {
    case " ${FUZZ_SKIP:-} " in *" $1 "*) return 1 ;; esac
    [ -z "${FUZZ_ONLY:-}" ] && return 0
    case " $FUZZ_ONLY " in *" $1 "*) return 0 ;; esac
    return 1
}

rm -rf "$OUT/seeds" "$OUT/corpus" "$OUT/logs" "$OUT/artifacts" "$OUT/tmp"
mkdir -p "$OUT/seeds" "$OUT/corpus" "$OUT/logs" "$OUT/artifacts" "$OUT/tmp"

# ---- build ----

CFLAGS="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1 -std=c11 -Wall -Wextra
-D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I$SRC/include -I$SRC/host -I$SRC/ports/posix"
CORE=$(ls "$SRC"/core/*.c)
AGENT="$(ls "$SRC"/agent/*.c) -I$SRC/agent"

build() {
    name=$1
    case $name in
    littlefs) extra="$SRC/host/littlefs.c $SRC/host/file.c $CORE" libs="" ;;
    devstatus)
        extra="$SRC/host/fleet.c"
        libs="$(pkg-config --libs libcjson libcurl 2>/dev/null || echo -lcjson -lcurl)"
        extra="$extra $(pkg-config --cflags libcjson libcurl 2>/dev/null || true)"
        ;;
    trigger)
        extra="$AGENT $CORE $(pkg-config --cflags libcjson 2>/dev/null || true)"
        libs="$(pkg-config --libs libcjson 2>/dev/null || echo -lcjson)"
        ;;
    mqtt_cmd) extra="$AGENT $CORE" libs="" ;;
    mdns) extra="$SRC/agent/mdns.c $CORE" libs="" ;;
    push | espota) extra="$AGENT $CORE $SRC/ports/posix/flash_file.c $SRC/ports/posix/kv.c $SRC/host/flashimg.c $SRC/host/image_make.c" libs="" ;;
    *) extra="$CORE" libs="" ;;
    esac
    # shellcheck disable=SC2086
    "$CLANG" $CFLAGS -o "$OUT/fuzz_$name" "$SRC/tests/fuzz/fuzz_$name.c" $extra $libs \
        >"$OUT/logs/build-$name.log" 2>&1
}

# Run "$@" for every selected harness name, $JOBS at a time; 1 if any failed.
parallel() {
    pids="" failed=0
    for h in $HARNESSES; do
        name=${h%%:*}
        selected "$name" || continue
        "$@" "$name" &
        pids="$pids $!"
        if [ "$(echo "$pids" | wc -w)" -ge "$JOBS" ]; then
            first=${pids# }
            first=${first%% *}
            wait "$first" || failed=1
            pids=${pids#* "$first"}
        fi
    done
    for p in $pids; do wait "$p" || failed=1; done
    return $failed
}

start=$(date +%s)
# Debian's clang only recommends its sanitizer runtimes (libclang-rt-NN-dev).
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }' >"$OUT/tmp/probe.c"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined -o "$OUT/tmp/probe" "$OUT/tmp/probe.c" >"$OUT/logs/probe.log" 2>&1; then
    cat "$OUT/logs/probe.log"
    say "$CLANG cannot build a libFuzzer harness: its runtime is missing (Debian: libclang-rt-14-dev)"
    exit 77
fi
if ! parallel build; then
    for f in "$OUT"/logs/build-*.log; do [ -s "$f" ] && { say "${f##*/}:"; cat "$f"; }; done
    say "a harness did not build"
    exit 1
fi

# ---- seeds ----

S=$OUT/seeds
mkdir -p "$S/image" "$S/part" "$S/part_csv" "$S/littlefs" "$S/devstatus" "$S/trigger" "$S/mqtt_cmd" "$S/push" "$S/espota" "$S/delta" "$S/mdns"
[ -d "$FIXTURES/esp-idf" ] || say "no fixtures in $FIXTURES: seeding from synthesised inputs only"
have_aloft=no
[ -x "$ALOFT" ] && have_aloft=yes
[ $have_aloft = yes ] || say "$ALOFT not built: no synthesised image or LittleFS seeds"

# image: a harness input is 2 config bytes, k chunk sizes, the image
# (fuzz_image.c). Each image gets three framings: byte by byte, mixed
# chunks with any chip, one 576-byte chunk with max_len = its length.
frame_image() { # in, out-prefix
    { printf '\000\377'; cat "$1"; } >"$2-1"
    { printf '\003\377\007\200\037'; cat "$1"; } >"$2-2"
    { printf '\201\377\210'; cat "$1"; } >"$2-3"
}
if [ -d "$FIXTURES/esp-idf" ]; then
    for f in "$FIXTURES"/esp-idf/*.bin; do
        case ${f##*/} in partition* | ota_data*) continue ;; esac
        head -c 4096 "$f" >"$OUT/tmp/img"
        frame_image "$OUT/tmp/img" "$S/image/$(basename "$f" .bin)"
    done
fi
if [ $have_aloft = yes ]; then
    "$ALOFT" image make --chip esp32c3 --project fz --version 1.0 -o "$OUT/tmp/made1.bin" >/dev/null
    "$ALOFT" image make --chip esp32s3 --project fz --version 2.0 --sim panic-on-boot \
        -o "$OUT/tmp/made2.bin" >/dev/null
    for i in 1 2; do
        head -c 4096 "$OUT/tmp/made$i.bin" >"$OUT/tmp/img"
        frame_image "$OUT/tmp/img" "$S/image/made$i"
    done
fi
# Whole images small enough to fuzz end to end: one with a descriptor, one
# with three segments, one without hash or descriptor, and one with a
# secure boot v2 tail holding a signature block (aloft image make's smallest
# is 64 KB).
if command -v python3 >/dev/null 2>&1; then
    python3 - "$OUT/tmp" <<'EOF'
import hashlib, struct, sys, zlib

def desc(version, project):
    d = bytearray(256)
    struct.pack_into("<II", d, 0, 0xABCD5432, 1)
    d[0x10:0x10 + len(version)] = version
    d[0x30:0x30 + len(project)] = project
    d[0x50:0x58] = b"12:00:00"
    d[0x60:0x6b] = b"Nov 22 2026"
    d[0x70:0x76] = b"v5.3.1"
    d[0xB4] = 16
    return bytes(d)

def image(chip, entry, segs, hashed):
    out = bytearray([0xE9, len(segs), 2, 0x20])
    out += struct.pack("<I", entry) + bytes([0xEE, 0, 0, 0])
    out += struct.pack("<HBHH", chip, 0, 0, 0xFFFF) + bytes(4) + bytes([1 if hashed else 0])
    csum = 0xEF
    for addr, data in segs:
        out += struct.pack("<II", addr, len(data)) + data
        for b in data:
            csum ^= b
    out += bytes((15 - len(out) % 16) % 16) + bytes([csum])
    if hashed:
        out += hashlib.sha256(out).digest()
    return bytes(out)

d = sys.argv[1]
small = [
    image(5, 0x40380080, [(0x3C000020, desc(b"1.0", b"tiny"))], True),
    image(9, 0x40375000, [(0x3C000020, desc(b"2.0", b"three")), (0x3FC88000, bytes(range(64))),
                          (0x40374000, b"\x13\x00\x00\x00" * 3)], True),
    image(0, 0x40080000, [(0x3FFB0000, b"\x01\x02\x03\x04" * 4)], False),
]
padded = small[0] + b"\xFF" * (4096 - len(small[0]))
# one P-256 signature block (FORMATS.md §6) with a right CRC, the rest 0xFF
block = bytearray(1216)
block[0:4] = b"\xE7\x03\x00\x00"
block[4:36] = hashlib.sha256(padded).digest()
block[36] = 2
block[37:165] = bytes(range(128))
struct.pack_into("<I", block, 1196, zlib.crc32(bytes(block[:1196])))
signed = padded + bytes(block) + b"\xFF" * (4096 - 1216)
for i, img in enumerate(small + [signed]):
    open(f"{d}/small{i}.bin", "wb").write(img)
EOF
    for f in "$OUT"/tmp/small*.bin; do frame_image "$f" "$S/image/$(basename "$f" .bin)"; done
else
    say "no python3: no small whole-image seeds"
fi

# part: binary tables, the fixtures' and ours compiled from partitions/*.csv.
if [ -d "$FIXTURES/esp-idf" ]; then
    for f in "$FIXTURES"/esp-idf/partition*.bin; do cp "$f" "$S/part/"; done
fi
if [ $have_aloft = yes ]; then
    for f in "$SRC"/partitions/*.csv "$FIXTURES"/esp-idf/*.csv; do
        [ -f "$f" ] || continue
        "$ALOFT" part csv2bin "$f" -o "$S/part/$(basename "$f" .csv).bin" >/dev/null 2>&1 || true
        "$ALOFT" part csv2bin "$f" --no-md5 -o "$S/part/$(basename "$f" .csv)-nomd5.bin" >/dev/null 2>&1 || true
    done
fi

# part_csv: every CSV we have.
for f in "$SRC"/partitions/*.csv "$FIXTURES"/esp-idf/*.csv; do [ -f "$f" ] && cp "$f" "$S/part_csv/"; done

# littlefs: small images of a small tree (the fixtures' are 1 MB), in both
# disk versions and two block sizes.
if [ $have_aloft = yes ]; then
    tree=$OUT/tmp/tree
    mkdir -p "$tree/assets/js" "$tree/empty"
    echo '<!doctype html><title>fz</title>' >"$tree/index.html"
    : >"$tree/assets/zero.txt"
    head -c 600 /dev/zero | tr '\0' 'a' >"$tree/assets/js/app.js"
    head -c 5000 /dev/zero | tr '\0' 'b' >"$tree/assets/big.bin"
    "$ALOFT" mkfs "$tree" -o "$OUT/tmp/lfs-64k" --size 64K >/dev/null
    "$ALOFT" mkfs "$tree" -o "$OUT/tmp/lfs-16k-512" --size 16K --block-size 512 >/dev/null
    "$ALOFT" mkfs "$tree" -o "$OUT/tmp/lfs-12k-512-v20" --size 12K --block-size 512 --disk-version 2.0 >/dev/null
    # The first byte: 0 as it is, else recompute CRCs for 128 << ((byte - 1) % 6)-byte blocks.
    for f in "$OUT"/tmp/lfs-*; do
        case $f in *64k) fix='\006' ;; *) fix='\003' ;; esac
        { printf '\000'; cat "$f"; } >"$S/littlefs/${f##*/}-raw"
        { printf "$fix"; cat "$f"; } >"$S/littlefs/${f##*/}-fixcrc"
    done
fi

# devstatus: the first byte sets the piece size (fuzz_devstatus.c).
printf '\000{"version":"1.2.0","project":"demo","chip":"esp32s3","running_partition":"ota_0","next_partition":"ota_1","state":"valid","reset_reason":"POWERON","mac":"24:0A:C4:00:00:01","boot_count":3,"uptime_s":125,"www_slot":0,"max_size":1966080,"busy":false}' \
    >"$S/devstatus/full"
printf '\002{"version":"v0.4.3","running_partition":"ota_1"}' >"$S/devstatus/minimal"
printf '\001{"status":"error","error":"busy","message":"another upload"}' >"$S/devstatus/error"
printf '\000[1,2,{"version":null}]' >"$S/devstatus/array"

# trigger: the JSON of an ota_trigger (fuzz_trigger.c).
printf '{"type":"ota_trigger","url":"https://ota.example/fw.bin","version":"1.2.0","sha256":"%s","size":1048576,"token":"t0k3n","id":"rollout-7","target":"firmware"}' \
    "$(printf '%064d' 0)" >"$S/trigger/full"
printf '{"type":"ota_trigger","url":"http://10.0.0.1/fw.bin"}' >"$S/trigger/seed"
printf '{"type":"ota_trigger","url":"http://a/www.bin","target":"frontend","size":null}' >"$S/trigger/frontend"

# mqtt_cmd: a retained flag byte, then the payload (fuzz_mqtt_cmd.c).
{ printf '\000'; cat "$S/trigger/full"; } >"$S/mqtt_cmd/trigger"
{ printf '\001'; cat "$S/trigger/seed"; } >"$S/mqtt_cmd/retained"
printf '\000{"type":"reboot"}' >"$S/mqtt_cmd/other"
printf '\000{"type":"ota_trigger","url":"ftp://x","id":"t-1"}' >"$S/mqtt_cmd/bad"

# push: method byte, piece byte, then path, auth, type, length, encoding lines, body (fuzz_push.c).
printf '\000\000/ota/status\n\n\n\n\n' >"$S/push/status"
printf '\001\200/ota\nBearer secret\napplication/octet-stream\n\n\n\351\004\002\040' >"$S/push/upload"
printf '\001\001/api/ota/pull\nBearer secret\napplication/json\n\n\n' >"$S/push/pull"
cat "$S/trigger/full" >>"$S/push/pull"
printf '\000\000/index.html\n\n\n\n\ngzip\n' >"$S/push/file"
if [ -x "$ALOFT" ]; then
    "$ALOFT" image make --chip esp32 --project fz --version 2.0.0 -o "$OUT/tmp/push.bin" >/dev/null 2>&1 &&
        { printf '\001\377/ota\nBearer secret\napplication/octet-stream\n\n\n'; cat "$OUT/tmp/push.bin"; } >"$S/push/image"
fi

# espota: a flags byte (1: open), then events: D len datagram, C, B len16 bytes, A (fuzz_espota.c).
dgram() { printf 'D'; printf "\\$(printf %03o ${#1})"; printf '%s' "$1"; }
hex32=0123456789abcdef0123456789abcdef
{ printf '\000'; dgram "0 1234 100 $hex32
"; dgram "200 $hex32$hex32 $hex32$hex32
"; } >"$S/espota/auth"
{ printf '\000'; dgram "100 1 1 $hex32
"; dgram "200 $hex32 $hex32
"; } >"$S/espota/md5"
if [ -f "$OUT/tmp/push.bin" ]; then
    size=$(wc -c <"$OUT/tmp/push.bin")
    md5=$(md5sum "$OUT/tmp/push.bin" | cut -c1-32)
    { printf '\001'; dgram "0 1234 $size $md5
"; printf 'CB\020\000'; head -c 4096 "$OUT/tmp/push.bin"; printf 'A'; } >"$S/espota/open"
fi

# delta: 2 bytes of result size - 1, a piece byte, then a patch's body
# (fuzz_delta.c): real patches from the harness's base (its formula) to
# edited copies of it, made by aloft delta make, header cut off.
if [ $have_aloft = yes ] && command -v python3 >/dev/null 2>&1; then
    python3 - "$OUT/tmp" <<'PY'
import sys
d = sys.argv[1]
base = bytes(((i * 2654435761) & 0xFFFFFFFF) >> 13 & 0xFF for i in range(4096))
open(d + "/dbase", "wb").write(base)
open(d + "/dnew1", "wb").write(base[:1000] + b"inserted code" * 9 + base[1000:3000] + bytes(range(40)) + base[3040:])
open(d + "/dnew2", "wb").write(bytes(b ^ 0x5A if i % 97 == 0 else b for i, b in enumerate(base)) + base[:2000])
PY
    for i in 1 2; do
        if "$ALOFT" delta make "$OUT/tmp/dbase" "$OUT/tmp/dnew$i" -o "$OUT/tmp/d$i.delta" -q --block-size 4K; then
            n=$(($(wc -c <"$OUT/tmp/dnew$i") - 1))
            { printf "\\$(printf %03o $((n & 255)))\\$(printf %03o $((n >> 8)))\\001"
              tail -c +85 "$OUT/tmp/d$i.delta"; } >"$S/delta/made$i"
        fi
    done
fi
printf '\377\017\000' >"$S/delta/empty"

# mdns: the flags byte (fuzz_mdns.c), then a query: PTR for the service
# (legacy and from 5353, QU), ANY for the instance, A for the host, and a
# PTR with this device's own PTR as a known answer.
q='\000\000\000\000\000\001\000\000\000\000\000\000'
printf "\000$q\010_arduino\004_tcp\005local\000\000\014\000\001" >"$S/mdns/ptr-legacy"
printf "\003$q\010_arduino\004_tcp\005local\000\000\014\200\001" >"$S/mdns/ptr-qu"
printf "\006$q\011desk-lamp\010_arduino\004_tcp\005local\000\000\377\000\001" >"$S/mdns/any"
printf "\002$q\022aloft-020000000001\005local\000\000\001\000\001" >"$S/mdns/a"
printf "\006\000\000\000\000\000\001\000\001\000\000\000\000\010_arduino\004_tcp\005local\000\000\014\000\001\300\014\000\014\000\001\000\000\021\224\000\014\011desk-lamp\300\014" \
    >"$S/mdns/known"
printf "\006$q\011_services\007_dns-sd\004_udp\005local\000\000\014\000\001" >"$S/mdns/services"

# Dictionaries: the words of each grammar.
cat >"$OUT/part.dict" <<'EOF'
"\xaa\x50\x00\x10"
"\xaa\x50\x01\x00"
"\xaa\x50\x01\x02"
"\xeb\xeb\xff\xff"
"\xff\xff\xff\xff"
"\x00\x00\x01\x00"
"\x00\x20\x00\x00"
"\x00\x80\x00\x00"
EOF
cat >"$OUT/part_csv.dict" <<'EOF'
"app"
"data"
"bootloader"
"partition_table"
"ota"
"ota_0"
"ota_15"
"factory"
"test"
"phy"
"nvs"
"nvs_keys"
"coredump"
"efuse"
"undefined"
"fat"
"spiffs"
"littlefs"
"primary"
"recovery"
"tee_0"
"tee_ota"
"encrypted"
"readonly"
"encrypted:readonly"
"0x"
"0x10000"
"0x8000"
"0x1000"
"1M"
"4K"
"0xfffff000"
"\x0a"
"\x0d\x0a"
","
"#"
"\xef\xbb\xbf"
EOF
cat >"$OUT/trigger.dict" <<'EOF'
"\"type\":"
"\"ota_trigger\""
"\"url\":"
"\"http://"
"\"https://"
"\"version\":"
"\"sha256\":"
"\"size\":"
"\"token\":"
"\"id\":"
"\"target\":"
"\"frontend\""
"\"firmware\""
"null"
"1e308"
"-1"
"0.5"
EOF
cp "$OUT/trigger.dict" "$OUT/mqtt_cmd.dict"
cat >"$OUT/push.dict" <<'EOF'
"/ota"
"/ota/status"
"/api/ota/status"
"/api/ota/frontend"
"/api/ota/frontend/rollback"
"/api/ota/pull"
"/api/ota/state"
"Bearer secret"
"application/octet-stream"
"gzip"
"/../"
"index.html"
EOF
cat >"$OUT/espota.dict" <<'EOF'
"0 "
"100 "
"200 "
" 1234 "
"0123456789abcdef0123456789abcdef"
"\x0a"
"D"
"C"
"B"
"A"
EOF
cat >"$OUT/devstatus.dict" <<'EOF'
"\"version\":"
"\"project\":"
"\"chip\":"
"\"running_partition\":"
"\"next_partition\":"
"\"state\":"
"\"reset_reason\":"
"\"mac\":"
"\"boot_count\":"
"\"uptime_s\":"
"\"www_slot\":"
"\"max_size\":"
"\"busy\":"
"true"
"false"
"null"
"1e308"
"-1e308"
"9223372036854775807"
"\"\\u0000\""
"\"\\ud83d\\ude00\""
EOF

# ---- run ----

run() {
    name=$1
    spec=$(for h in $HARNESSES; do case $h in "$name":*) echo "$h" ;; esac; done)
    runs=${FUZZ_RUNS:-$(echo "$spec" | cut -d: -f2)}
    max_len=$(echo "$spec" | cut -d: -f3)
    mkdir -p "$OUT/corpus/$name"
    set -- -runs="$runs" -max_len="$max_len" -max_total_time="$TIME" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$name-"
    [ -f "$OUT/$name.dict" ] && set -- "$@" -dict="$OUT/$name.dict"
    [ -n "${FUZZ_SEED:-}" ] && set -- "$@" -seed="$FUZZ_SEED"
    committed=$SRC/tests/fuzz/corpus/$name
    [ -d "$committed" ] || committed=""
    # shellcheck disable=SC2086
    "$OUT/fuzz_$name" "$@" "$OUT/corpus/$name" "$OUT/seeds/$name" $committed >"$OUT/logs/$name.log" 2>&1
    echo $? >"$OUT/logs/$name.rc"
}

# The repository's corpus grows by what this run found that it lacks.
keep() {
    name=$1
    mkdir -p "$SRC/tests/fuzz/corpus/$name"
    before=$(ls "$SRC/tests/fuzz/corpus/$name" | wc -l)
    "$OUT/fuzz_$name" -merge=1 -rss_limit_mb=2048 -timeout=10 "$SRC/tests/fuzz/corpus/$name" "$OUT/corpus/$name" \
        "$OUT/seeds/$name" >"$OUT/logs/$name-merge.log" 2>&1 || { say "$name: merge failed"; return 1; }
    say "$name: kept $(($(ls "$SRC/tests/fuzz/corpus/$name" | wc -l) - before)) new inputs in tests/fuzz/corpus/$name"
}

set +e
parallel run
set -e
status=0
for h in $HARNESSES; do
    name=${h%%:*}
    selected "$name" || { say "$name: not run (FUZZ_ONLY, FUZZ_SKIP)"; continue; }
    log=$OUT/logs/$name.log
    units=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    if [ "$(cat "$OUT/logs/$name.rc" 2>/dev/null)" = 0 ] && ! grep -qE '^==[0-9]+==|^SUMMARY:|Test unit written' "$log"; then
        say "$name: ok, $units runs ($secs/s), corpus $(ls "$OUT/corpus/$name" | wc -l) new inputs"
    else
        status=1
        say "$name: FAILED"
        tail -n 40 "$log"
        ls "$OUT/artifacts/$name-"* 2>/dev/null | sed 's/^/fuzz: crashing input: /'
    fi
done
if [ "${FUZZ_KEEP:-0}" = 1 ] && [ $status = 0 ]; then
    for h in $HARNESSES; do
        name=${h%%:*}
        selected "$name" && { keep "$name" || status=1; }
    done
fi
say "$(($(date +%s) - start)) s"
exit $status
