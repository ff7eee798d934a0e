#!/usr/bin/env bash
# The embedded proof of the device library (issue 2, "Embedded proof"):
# cross-compile every core/*.c freestanding for ESP32-C3's ISA (rv32imc) and
# for Cortex-M4, check that the objects need nothing from outside the core
# but memcpy/memset/memcmp, print .text/.data/.bss per module, and the
# worst-case stack of the update path (scripts/stack.py). Exits 1 when a
# check fails or a budget is exceeded.
#
# usage: scripts/size.sh [--out DIR]     (default DIR: build-size/)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build-size
while [ $# -gt 0 ]; do
    case $1 in
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "usage: scripts/size.sh [--out DIR]" >&2; exit 2 ;;
    esac
done

TEXT_BUDGET=24576  # whole core, .text (code + read-only data), per target
RAM_BUDGET=256     # whole core, .data + .bss
STACK_BUDGET=1536  # aloft_update_write and everything it calls
ALLOWED="memcpy memset memcmp"

targets=(riscv arm)
declare -A prefix=([riscv]=riscv64-unknown-elf- [arm]=arm-none-eabi-)
declare -A name=([riscv]="rv32imc (ESP32-C3)" [arm]="Cortex-M4")
declare -A flags=([riscv]="-march=rv32imc -mabi=ilp32" [arm]="-mcpu=cortex-m4 -mthumb")
common=(-Os -ffreestanding -fstack-usage -fcallgraph-info=su -std=c11 -Wall -Wextra -Werror
        -I include -isystem scripts/freestanding)

for t in "${targets[@]}"; do
    if ! command -v "${prefix[$t]}gcc" >/dev/null; then
        echo "size.sh: ${prefix[$t]}gcc not found; run scripts/deps.sh" >&2
        exit 1
    fi
done

cd "$root"
shopt -s nullglob
sources=(core/*.c)
if [ ${#sources[@]} -eq 0 ]; then
    echo "size.sh: no core/*.c to measure" >&2
    exit 1
fi

problems=()
declare -A text data bss
for t in "${targets[@]}"; do
    rm -rf "${out:?}/$t"
    mkdir -p "$out/$t"
    for src in "${sources[@]}"; do
        m=$(basename "$src" .c)
        obj=$out/$t/$m.o
        # shellcheck disable=SC2086
        if ! log=$("${prefix[$t]}gcc" ${flags[$t]} "${common[@]}" -c "$src" -o "$obj" 2>&1); then
            printf '%s\n' "$log" >&2
            problems+=("$src does not compile freestanding for ${name[$t]} (only memcpy, memset and memcmp exist there)")
            continue
        fi
        read -r tx da bs _ < <("${prefix[$t]}size" -B "$obj" | tail -n 1)
        text[$t,$m]=$tx data[$t,$m]=$da bss[$t,$m]=$bs
    done
    # What the objects need and no core object defines must come from libc:
    # only the three mem functions may; libgcc helpers (__udivdi3...) may not.
    objs=("$out/$t"/*.o)
    [ ${#objs[@]} -gt 0 ] || continue
    defined=" $("${prefix[$t]}nm" -g --defined-only "${objs[@]}" | awk 'NF == 3 {printf "%s ", $3}') "
    for obj in "${objs[@]}"; do
        for sym in $("${prefix[$t]}nm" -u "$obj" | awk '{print $NF}'); do
            case "$defined $ALLOWED " in
            *" $sym "*) ;;
            *) problems+=("core/$(basename "$obj" .o).c needs '$sym' on ${name[$t]}, which is not in the core: it may use only $ALLOWED from outside") ;;
            esac
        done
    done
done

printf '\naloft core, freestanding -Os (.text includes read-only data)\n\n'
printf '%-12s' ""
for t in "${targets[@]}"; do printf ' | %-26s' "${name[$t]}"; done
printf '\n%-12s' module
for t in "${targets[@]}"; do printf ' | %8s %8s %8s' .text .data .bss; done
printf '\n'
declare -A ttext tdata tbss tram
for src in "${sources[@]}"; do
    m=$(basename "$src" .c)
    printf '%-12s' "$m"
    for t in "${targets[@]}"; do
        if [ -n "${text[$t,$m]:-}" ]; then
            printf ' | %8d %8d %8d' "${text[$t,$m]}" "${data[$t,$m]}" "${bss[$t,$m]}"
            ttext[$t]=$((${ttext[$t]:-0} + text[$t,$m]))
            tdata[$t]=$((${tdata[$t]:-0} + data[$t,$m]))
            tbss[$t]=$((${tbss[$t]:-0} + bss[$t,$m]))
            tram[$t]=$((${tram[$t]:-0} + data[$t,$m] + bss[$t,$m]))
        else
            printf ' | %26s' "(did not compile)"
        fi
    done
    printf '\n'
done
printf '%-12s' total
for t in "${targets[@]}"; do
    printf ' | %8d %8d %8d' "${ttext[$t]:-0}" "${tdata[$t]:-0}" "${tbss[$t]:-0}"
done
printf '\n%-12s' budget
for t in "${targets[@]}"; do printf ' | %8d %17s' $TEXT_BUDGET "data+bss <= $RAM_BUDGET"; done
printf '\n%-12s' verdict
for t in "${targets[@]}"; do
    v="ok"
    if [ "${ttext[$t]:-0}" -gt $TEXT_BUDGET ]; then
        v="OVER (.text)"
        problems+=("${name[$t]}: core .text ${ttext[$t]} B exceeds the budget of $TEXT_BUDGET B")
    fi
    if [ "${tram[$t]:-0}" -gt $RAM_BUDGET ]; then
        v="OVER (data+bss)"
        problems+=("${name[$t]}: core .data+.bss ${tram[$t]} B exceeds the budget of $RAM_BUDGET B")
    fi
    printf ' | %26s' "$v"
done
printf '\n\n'

for t in "${targets[@]}"; do
    if ! python3 scripts/stack.py "$out/$t" --label "${name[$t]}" --budget $STACK_BUDGET; then
        problems+=("${name[$t]}: stack check of the update path failed (see above)")
    fi
    printf '\n'
done

if [ ${#problems[@]} -gt 0 ]; then
    printf 'size.sh: FAILED\n' >&2
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
fi
echo "size.sh: all budgets met; the core needs only $ALLOWED"
