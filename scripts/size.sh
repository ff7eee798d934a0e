#!/usr/bin/env bash
# The embedded proof of the device library (issue 2, "Embedded proof"):
# cross-compile every core/*.c freestanding and every agent/*.c against
# newlib (ESP-IDF's C library) for ESP32-C3's ISA (rv32imc) and for
# Cortex-M4; check that the core needs nothing from outside itself but
# memcpy/memset/memcmp and the agent nothing but the core and what newlib's
# libc and libgcc define; print .text/.data/.bss per module, the worst-case
# stack of the core's update path and of every function the agent's headers
# declare (scripts/stack.py), and the C library functions the agent needs.
# Exits 1 when a check fails or a budget is exceeded.
#
# With ESP-IDF's headers at hand (ALOFT_ESP_IDF), also the ESP-IDF
# component's sizes and its upload handler's worst-case stack for ESP32-C3.
#
# usage: scripts/size.sh [--out DIR]     (default DIR: build-size/)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build-size
while [ $# -gt 0 ]; do
    case $1 in
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "usage: scripts/size.sh [--out DIR]" >&2; exit 2 ;;
    esac
done

TEXT_BUDGET=24576        # whole core, .text (code + read-only data), per target
RAM_BUDGET=256           # whole core, .data + .bss
STACK_BUDGET=1536        # aloft_update_write and everything it calls
ALLOWED="memcpy memset memcmp"
AGENT_TEXT_BUDGET=62232  # agent + core, .text, per target: 48 KB, + 2 KB for signature checks,
                         # + 512 B for signed reports (the HMAC, the signing in pull.c),
                         # + 2757 B for ArduinoOTA uploads (agent/espota.c: the handshake, its MD5 and
                         # PBKDF2-HMAC-SHA256 answers; push.c's upload entry for it),
                         # + 3643 B for delta updates (core/delta.c's decoder, core/delta_update.c),
                         # + 595 B for POST /ota taking them (push.c: the patch type, its writer, errors),
                         # + 700 B for resuming a patch upload whose link dropped (push.c, status),
                         # + 241 B for naming a frontend flashed with the app (check.c: its superblock),
                         # + 320 B for a patch's checkpoint kept in the settings, so a restart resumes it
                         # (push.c: delta/ck saved every 32 KB of patch and at a drop, dropped at the end;
                         # agent.c: loaded at start)
                         # + 1248 B for pulls taking delta patches (pull.c: a patch body through the decoder,
                         # its result vetted and checked like an image; check.c: X-Aloft-Delta; trigger.c:
                         # delta_url and delta_base), + 176 B for resuming a pulled patch whose download
                         # dropped at the decoder's last checkpoint (pull.c),
                         # + 168 B for delta format 2 (core/delta.c: near matches, state contexts)
                         # + 432 B for delta format 3 (core/delta.c: fields, the references moved code
                         # changes, as the old value plus a recent delta: the patch 11.82 -> 10.01 % of NEW)
                         # + 240 B for a pulled patch that survives a restart (pull.c: its job kept with
                         # "delta", the decoder's checkpoint kept in delta/ck every 32 KB of patch and
                         # resumed from after the restart, dropped at the end; push.c shares its keeper)
OPTIONAL=(ble mdns)      # agent modules a device may leave out, each outside the agent's budget with its own:
BLE_TEXT_BUDGET=6656     # agent/ble.c, the BLE OTA service (ESP-IDF: CONFIG_ALOFT_BLE_OTA; esp32-ble-ota's protocol and
                         # the extended mode: sector CRCs, resume, ABORT, Status), .text per target;
                         # + 512 B for its PSK check (CHALLENGE/AUTH with HMAC-SHA256, fail closed, legacy)
                         # + 512 B for delta patches (BEGIN's kind, Status's flags, resuming at the
                         # decoder's checkpoint inside a sector)
MDNS_TEXT_BUDGET=3072    # agent/mdns.c, the mDNS/DNS-SD responder that lists the device among the Arduino IDE's
                         # network ports (ESP-IDF: CONFIG_ALOFT_MDNS): 2.9 KB on rv32imc, 2.0 KB on Cortex-M4
AGENT_RAM_BUDGET=512     # agent + core, .data + .bss
AGENT_STACK_BUDGET=2048  # each agent entry point and everything it calls
DELTA_RAM_BUDGET=8192    # the delta decoder: its state (struct aloft_delta) + the worst-case stack
                         # of applying a patch through the update writer (docs/delta.md)
# Indirect calls the core makes to its own functions (the delta decoder's io,
# bound to the update writer): stack.py follows them instead of stopping there.
CORE_CALLBACKS=(--callbacks delta.c=du_read,du_start,du_write)
# The agent's entry points: every function these headers declare.
AGENT_API=(include/aloft/agent.h include/aloft/push.h include/aloft/pull.h include/aloft/mqtt.h include/aloft/espota.h
           include/aloft/ble.h include/aloft/mdns.h)
# The agent may call what newlib's libc defines (one multilib stands for all:
# the names are the same) and the target's libgcc helpers.
NEWLIB_LIBC=/usr/lib/arm-none-eabi/newlib/thumb/v7e-m/nofp/libc.a
# The ESP-IDF component, measured for ESP32-C3 when ESP-IDF's headers are
# here (the header kit; ALOFT_ESP_IDF: its folder). Its upload handler runs
# on the HTTP server's task: what the handler and the agent take must leave
# this much of the configured stack to esp_http_server, lwIP and newlib.
IDF_KIT=${ALOFT_ESP_IDF:-$root/../shared/esp-idf}
IDF_RESERVE=2048

targets=(riscv arm)
declare -A prefix=([riscv]=riscv64-unknown-elf- [arm]=arm-none-eabi-)
declare -A name=([riscv]="rv32imc (ESP32-C3)" [arm]="Cortex-M4")
declare -A flags=([riscv]="-march=rv32imc -mabi=ilp32" [arm]="-mcpu=cortex-m4 -mthumb")
# Debian's riscv64-unknown-elf-gcc ships no libc headers: libnewlib-dev's.
declare -A newlib_headers=([riscv]="-isystem /usr/include/newlib" [arm]="")
common=(-Os -fstack-usage -fcallgraph-info=su -std=c11 -Wall -Wextra -Werror -I include)
declare -A part_flags=([core]="-ffreestanding -isystem scripts/freestanding" [agent]="-I agent")
declare -A part_env=([core]="freestanding (only memcpy, memset and memcmp exist there)"
                     [agent]="against newlib's headers")

for t in "${targets[@]}"; do
    if ! command -v "${prefix[$t]}gcc" >/dev/null; then
        echo "size.sh: ${prefix[$t]}gcc not found; run scripts/deps.sh" >&2
        exit 1
    fi
done
for f in "$NEWLIB_LIBC" /usr/include/newlib/stdio.h; do
    if [ ! -e "$f" ]; then
        echo "size.sh: $f not found; run scripts/deps.sh" >&2
        exit 1
    fi
done

cd "$root"
shopt -s nullglob
parts=(core agent)
declare -A modules
for part in "${parts[@]}"; do
    for src in "$part"/*.c; do modules[$part]+="$(basename "$src" .c) "; done
done
if [ -z "${modules[core]:-}" ]; then
    echo "size.sh: no core/*.c to measure" >&2
    exit 1
fi
mapfile -t entry_points < <(grep -ohE '^[a-z][^(;]*\baloft_[a-z0-9_]+\(' "${AGENT_API[@]}" |
                            grep -oE 'aloft_[a-z0-9_]+\($' | tr -d '(')

problems=()
declare -A text data bss

# Dependencies point one way: the core never includes the agent's headers,
# and the agent nothing of the programs' (its -I has no host/ or apps/).
for src in $(grep -lE '#include "(aloft/(agent|push|pull|mqtt)|json|agent_private)\.h"' core/*.c core/*.h 2>/dev/null); do
    problems+=("$src includes an agent header: the core must not depend on the agent")
done

# compile PART TARGET: every PART/*.c into $out/TARGET/PART/, with the sizes
# of each object in text/data/bss[TARGET,PART/module].
compile() {
    local part=$1 t=$2 m obj log tx da bs hosted=""
    if [ "$part" = agent ]; then hosted=${newlib_headers[$t]}; fi
    mkdir -p "$out/$t/$part"
    for m in ${modules[$part]:-}; do
        obj=$out/$t/$part/$m.o
        # shellcheck disable=SC2086
        if ! log=$("${prefix[$t]}gcc" ${flags[$t]} "${common[@]}" ${part_flags[$part]} $hosted \
                   -c "$part/$m.c" -o "$obj" 2>&1); then
            printf '%s\n' "$log" >&2
            problems+=("$part/$m.c does not compile ${part_env[$part]} for ${name[$t]}")
            continue
        fi
        read -r tx da bs _ < <("${prefix[$t]}size" -B "$obj" | tail -n 1)
        text[$t,$part/$m]=$tx data[$t,$part/$m]=$da bss[$t,$part/$m]=$bs
    done
}

# symbols TARGET FILE...: the global symbols the objects or archives define.
symbols() {
    local t=$1; shift
    [ $# -gt 0 ] || return 0
    "${prefix[$t]}nm" -g --defined-only "$@" 2>/dev/null | awk 'NF == 3 {printf "%s ", $3}'
}

# needs TARGET "DEFINED" OBJ...: "OBJ SYMBOL" for every symbol an object
# needs that is not in the space-separated list DEFINED.
needs() {
    local t=$1 defined=" $2 " obj sym; shift 2
    for obj in "$@"; do
        for sym in $("${prefix[$t]}nm" -u "$obj" | awk '{print $NF}'); do
            case "$defined" in *" $sym "*) ;; *) echo "$obj $sym" ;; esac
        done
    done
}

# needed SYMBOL KIND TARGET: the agent needs SYMBOL from KIND ("libc" or
# "libgcc") on TARGET.
declare -A clib clib_on  # symbol -> kind; symbol -> " target..."
needed() {
    clib[$1]=$2
    [[ "${clib_on[$1]:-} " == *" $3 "* ]] || clib_on[$1]+=" $3"
}

libc=" $(symbols arm "$NEWLIB_LIBC") "
for t in "${targets[@]}"; do
    rm -rf "${out:?}/$t"
    for part in "${parts[@]}"; do compile "$part" "$t"; done
    core_objs=("$out/$t"/core/*.o)
    agent_objs=("$out/$t"/agent/*.o)

    # What core objects need and no core object defines must come from libc:
    # only the three mem functions may; libgcc helpers (__udivdi3...) may not.
    while read -r obj sym; do
        problems+=("core/$(basename "$obj" .o).c needs '$sym' on ${name[$t]}, which is not in the core: it may use only $ALLOWED from outside")
    done < <(needs "$t" "$(symbols "$t" "${core_objs[@]}") $ALLOWED" "${core_objs[@]}")

    # What agent objects need and neither the core nor the agent defines must
    # be in newlib's libc or in the target's libgcc.
    # shellcheck disable=SC2086
    libgcc=" $(symbols "$t" "$("${prefix[$t]}gcc" ${flags[$t]} -print-libgcc-file-name)") "
    while read -r obj sym; do
        src=agent/$(basename "$obj" .o).c
        if [[ $libc == *" $sym "* ]]; then
            needed "$sym" libc "$t"
        elif [[ $libgcc == *" $sym "* ]]; then
            needed "$sym" libgcc "$t"
        elif [[ $sym == aloft_* ]]; then
            problems+=("$src needs '$sym' on ${name[$t]}, which no core/ or agent/ object defines")
        else
            problems+=("$src needs '$sym' on ${name[$t]}, which is neither in newlib's libc nor in libgcc")
        fi
    done < <(needs "$t" "$(symbols "$t" "${core_objs[@]}" "${agent_objs[@]}")" "${agent_objs[@]}")
done

declare -A ttext tdata tbss  # [target,part]

# rows PART: one table row per module of PART; sums into ttext/tdata/tbss[target,PART]
# (an optional module's into [target,MODULE]).
rows() {
    local part=$1 m t into
    for m in ${modules[$part]:-}; do
        into=$part
        [[ " ${OPTIONAL[*]} " == *" $m "* ]] && into=$m
        printf '%-12s' "$m"
        for t in "${targets[@]}"; do
            if [ -n "${text[$t,$part/$m]:-}" ]; then
                printf ' | %8d %8d %8d' "${text[$t,$part/$m]}" "${data[$t,$part/$m]}" "${bss[$t,$part/$m]}"
                ttext[$t,$into]=$((${ttext[$t,$into]:-0} + text[$t,$part/$m]))
                tdata[$t,$into]=$((${tdata[$t,$into]:-0} + data[$t,$part/$m]))
                tbss[$t,$into]=$((${tbss[$t,$into]:-0} + bss[$t,$part/$m]))
            else
                printf ' | %26s' "(did not compile)"
            fi
        done
        printf '\n'
    done
}

# sum ARRAY TARGET PART...: ARRAY[TARGET,PART] added over the parts.
sum() {
    local -n arr=$1
    local t=$2 p s=0; shift 2
    for p in "$@"; do s=$((s + ${arr[$t,$p]:-0})); done
    echo $s
}

# sum_row LABEL PART...: a row of the given parts' sizes added up.
sum_row() {
    local label=$1 t; shift
    printf '%-12s' "$label"
    for t in "${targets[@]}"; do
        printf ' | %8d %8d %8d' "$(sum ttext "$t" "$@")" "$(sum tdata "$t" "$@")" "$(sum tbss "$t" "$@")"
    done
    printf '\n'
}

# totals LABEL WHAT TEXT_BUDGET RAM_BUDGET PART...: the total, budget and
# verdict rows of the given parts together (WHAT names them in problems).
totals() {
    local label=$1 what=$2 tb=$3 rb=$4 t v tx ram; shift 4
    sum_row "$label" "$@"
    printf '%-12s' budget
    for t in "${targets[@]}"; do printf ' | %8d %17s' "$tb" "data+bss <= $rb"; done
    printf '\n%-12s' verdict
    for t in "${targets[@]}"; do
        v="ok" tx=$(sum ttext "$t" "$@") ram=$(($(sum tdata "$t" "$@") + $(sum tbss "$t" "$@")))
        if [ "$tx" -gt "$tb" ]; then
            v="OVER (.text)"
            problems+=("${name[$t]}: $what .text $tx B exceeds the budget of $tb B")
        fi
        if [ "$ram" -gt "$rb" ]; then
            v="OVER (data+bss)"
            problems+=("${name[$t]}: $what .data+.bss $ram B exceeds the budget of $rb B")
        fi
        printf ' | %26s' "$v"
    done
    printf '\n'
}

printf '\naloft core (freestanding) and agent (newlib), -Os (.text includes read-only data)\n\n'
printf '%-12s' ""
for t in "${targets[@]}"; do printf ' | %-26s' "${name[$t]}"; done
printf '\n%-12s' module
for t in "${targets[@]}"; do printf ' | %8s %8s %8s' .text .data .bss; done
printf '\n'
rows core
totals total core $TEXT_BUDGET $RAM_BUDGET core
printf 'agent/\n'
rows agent
sum_row "agent total" agent
totals "agent + core" "agent + core" $AGENT_TEXT_BUDGET $AGENT_RAM_BUDGET core agent
printf 'optional (outside the total above)\n'
totals "ble" "agent/ble.c (CONFIG_ALOFT_BLE_OTA)" $BLE_TEXT_BUDGET 0 ble
totals "mdns" "agent/mdns.c (CONFIG_ALOFT_MDNS)" $MDNS_TEXT_BUDGET 0 mdns
printf '\n'

# stack PART TARGET: scripts/stack.py's report on PART's entry points.
stack() {
    local t=$2
    case $1 in
    core) python3 scripts/stack.py "$out/$t/core" --label "${name[$t]}" --budget $STACK_BUDGET ;;
    agent) python3 scripts/stack.py "$out/$t/agent" --also "$out/$t/core" --name "core or the agent" "${CORE_CALLBACKS[@]}" \
               --label "${name[$t]}, the agent's entry points" --budget $AGENT_STACK_BUDGET --budget-all \
               --libc "${entry_points[@]}" ;;
    esac
}
declare -A what=([core]="the update path" [agent]="the agent's entry points")
for part in "${parts[@]}"; do
    for t in "${targets[@]}"; do
        if ! stack "$part" "$t"; then
            problems+=("${name[$t]}: stack check of ${what[$part]} failed (see above)")
        fi
        printf '\n'
    done
done

# delta_ram TARGET: the delta decoder's state and worst-case stack against
# DELTA_RAM_BUDGET (the update writer's own struct aloft_update is not
# counted: every update, delta or not, has one).
delta_ram() {
    local t=$1 probe=$out/$1/delta_probe state stack report
    printf '#include "aloft/delta.h"\nstruct aloft_delta aloft_delta_probe;\n' >"$probe.c"
    # shellcheck disable=SC2086
    "${prefix[$t]}gcc" ${flags[$t]} -Os -std=c11 -I include ${part_flags[core]} -c "$probe.c" -o "$probe.o"
    state=$((16#$("${prefix[$t]}nm" -S "$probe.o" | awk '$4 == "aloft_delta_probe" {print $2}')))
    report=$(python3 scripts/stack.py "$out/$t/core" "${CORE_CALLBACKS[@]}" --label "${name[$t]}, applying a delta" \
             --budget $((DELTA_RAM_BUDGET - state)) --budget-all aloft_delta_update_write aloft_delta_update_end) || true
    printf '%s\n' "$report"
    stack=$(printf '%s\n' "$report" | awk '$1 ~ /^aloft_delta_update_(write|end)$/ && $2 > m {m = $2} END {print m + 0}')
    printf 'delta decoder RAM, %s: state %d B + stack %d B = %d B (budget %d B)%s\n\n' "${name[$t]}" \
        "$state" "$stack" $((state + stack)) $DELTA_RAM_BUDGET \
        "$([ $((state + stack)) -le $DELTA_RAM_BUDGET ] && echo "  ok" || echo "  OVER BUDGET")"
    if [ $((state + stack)) -gt $DELTA_RAM_BUDGET ] || printf '%s\n' "$report" | grep -q PROBLEM; then
        problems+=("${name[$t]}: the delta decoder needs $((state + stack)) B of RAM (budget $DELTA_RAM_BUDGET B) or its stack check failed")
    fi
}
for t in "${targets[@]}"; do delta_ram "$t"; done

# clib_list KIND: the KIND ("libc" | "libgcc") symbols the agent needs: those
# every target needs, then per target those only some need.
clib_list() {
    local kind=$1 sym t
    local -A only
    local -a common=()
    for sym in $(printf '%s\n' "${!clib[@]}" | sort); do
        [ "${clib[$sym]}" = "$kind" ] || continue
        if [ "${clib_on[$sym]}" = " ${targets[*]}" ]; then
            common+=("$sym")
        else
            for t in ${clib_on[$sym]}; do only[$t]+=" $sym"; done
        fi
    done
    local list=${common[*]}
    for t in "${targets[@]}"; do
        [ -z "${only[$t]:-}" ] || list+="${list:+; }on ${name[$t]}:${only[$t]}"
    done
    echo "${list:-none}"
}
printf 'C library functions the agent needs (all in newlib'\''s libc): %s\n' "$(clib_list libc)"
printf 'libgcc helpers the agent needs: %s\n\n' "$(clib_list libgcc)"

# component: the ESP-IDF component's glue compiled as ESP-IDF builds it for
# ESP32-C3 (its headers, sdkconfig, the Kconfig defaults), its sizes with
# the core's and the agent's, and the upload handler's worst-case stack.
component() {
    local t=riscv gcc=riscv64-unknown-elf-gcc glue=ports/esp-idf/aloft d src m obj log tx da bs
    local -a inc=(-I"$IDF_KIT/config")
    while IFS= read -r d; do
        case $d in '' | '#'*) continue ;; esac
        [ -d "$IDF_KIT/$d" ] && inc+=(-I"$IDF_KIT/$d")
    done <"$IDF_KIT/include-dirs.txt"
    mkdir -p "$out/$t/glue"
    tests/esp-idf/kconfig.sh >"$out/$t/glue/sdkconfig_aloft.h"
    printf 'the ESP-IDF component (%s), for %s against ESP-IDF v5.5.5'\''s headers\n\n' "$glue" "${name[$t]}"
    printf '%-20s | %8s %8s %8s\n' module .text .data .bss
    local -A sum=()
    for src in "$glue"/*.c; do
        m=$(basename "$src" .c) obj=$out/$t/glue/$m.o
        # shellcheck disable=SC2086
        if ! log=$($gcc ${flags[$t]} -Os -std=gnu17 -fstack-usage -fcallgraph-info=su -nostdinc \
                   -isystem "$($gcc -print-file-name=include)" -isystem "$($gcc -print-file-name=include-fixed)" \
                   "${inc[@]}" -isystem "$IDF_KIT/newlib-compat" -isystem /usr/include/newlib \
                   -D_GNU_SOURCE -DESP_PLATFORM -DIDF_VER='"v5.5.5"' -DSOC_MMU_PAGE_SIZE=CONFIG_MMU_PAGE_SIZE \
                   -D_POSIX_READER_WRITER_LOCKS -include "$IDF_KIT/config/sdkconfig.h" \
                   -include "$out/$t/glue/sdkconfig_aloft.h" -I include -I agent -I "$glue/include" \
                   -I "$glue/private_include" -isystem tests/esp-idf/stand-in/mbedtls -c "$src" -o "$obj" 2>&1); then
            printf '%s\n' "$log" >&2
            problems+=("$src does not compile against ESP-IDF's headers for ${name[$t]}")
            continue
        fi
        read -r tx da bs _ < <("${prefix[$t]}size" -B "$obj" | tail -n 1)
        printf '%-20s | %8d %8d %8d\n' "$m" "$tx" "$da" "$bs"
        sum[text]=$((${sum[text]:-0} + tx)) sum[data]=$((${sum[data]:-0} + da)) sum[bss]=$((${sum[bss]:-0} + bs))
    done
    printf '%-20s | %8d %8d %8d\n' "glue total" "${sum[text]:-0}" "${sum[data]:-0}" "${sum[bss]:-0}"
    printf '%-20s | %8d %8d %8d\n\n' "core + agent + glue" \
        $((${sum[text]:-0} + $(sum ttext $t core agent))) $((${sum[data]:-0} + $(sum tdata $t core agent))) \
        $((${sum[bss]:-0} + $(sum tbss $t core agent)))
    local stack_size
    stack_size=$(awk '$2 == "CONFIG_ALOFT_HTTPD_STACK_SIZE" {print $3}' "$out/$t/glue/sdkconfig_aloft.h")
    if ! python3 scripts/stack.py "$out/$t/glue" --also "$out/$t/agent" --also "$out/$t/core" \
            --name "component, agent or core" --label "${name[$t]}, the upload handler on the HTTP server's task" \
            --budget $((stack_size - IDF_RESERVE)) --budget-all --libc handle; then
        problems+=("the upload handler needs more than ALOFT_HTTPD_STACK_SIZE ($stack_size B) less $IDF_RESERVE B for ESP-IDF")
    fi
    printf '(ALOFT_HTTPD_STACK_SIZE is %d B; the rest, at least %d B, is for esp_http_server, lwIP and newlib)\n\n' \
        "$stack_size" "$IDF_RESERVE"
}
if [ -f "$IDF_KIT/include-dirs.txt" ]; then
    component
else
    printf 'the ESP-IDF component: not measured (no ESP-IDF headers at %s; set ALOFT_ESP_IDF)\n\n' "$IDF_KIT"
fi

if [ ${#problems[@]} -gt 0 ]; then
    printf 'size.sh: FAILED\n' >&2
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
fi
echo "size.sh: all budgets met; the core needs only $ALLOWED, the agent only the core, newlib and libgcc"
