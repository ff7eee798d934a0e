#!/usr/bin/env bash
# Each header of tests/fake-idf/include against the ESP-IDF header it stands
# for: a file that includes the real header, then the fake's prototypes
# (FAKE_IDF_DECLS_CHECK skips the fake's own types and macros), compiled by
# the kit's `check` for ESP32-C3. A prototype that differs from the real one
# is a "conflicting types" error; one that redeclares nothing (a function
# ESP-IDF does not have, or has in another header) fails too.
# usage: tests/fake-idf/decls.sh CHECK OUTDIR
# Exits 77 (skipped) when CHECK, clang or newlib's headers are missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
check=${1:?usage: decls.sh CHECK OUTDIR}
out=${2:?usage: decls.sh CHECK OUTDIR}
skip() { echo "decls.sh: skipped: $*"; exit 77; }
[ -x "$check" ] || skip "$check not found (the ESP-IDF header kit)"
command -v clang >/dev/null || skip "clang not found"
[ -d /usr/include/newlib ] || skip "newlib's headers not found (libnewlib-dev)"

rm -rf "$out"
mkdir -p "$out"
fail=0 n=0
cd "$here/include"
for h in $(find . -name '*.h' | sed 's|^\./||' | sort); do
    src=$out/$(echo "$h" | tr / _).c
    { # FreeRTOS.h first, as ESP-IDF's own headers require it
        echo '#include "freertos/FreeRTOS.h"'
        echo "#include \"$h\""
        echo '#define FAKE_IDF_DECLS_CHECK'
        echo "#include \"$here/include/$h\""
    } >"$src"
    # the kit leaves mbedTLS out: esp_crt_bundle.h is the compile test's stand-in
    if ! "$check" -Werror -isystem"$here/../esp-idf/stand-in/mbedtls" -Xclang -ast-dump "$src" >"$src.ast" 2>"$src.err"; then
        cat "$src.err"
        echo "decls.sh: FAIL: $h differs from ESP-IDF's"
        fail=1
        continue
    fi
    # top-level functions and variables declared in the fake file with no
    # earlier declaration ("prev") from the real headers
    new=$(awk -v fake="$here/include/$h" '
        match($0, /<[^<>:]+:[0-9]+:[0-9]+/) { f = substr($0, RSTART + 1, RLENGTH - 1); sub(/:[0-9]+:[0-9]+$/, "", f); if (f != "line") cur = f }
        /^[|`]-(FunctionDecl|VarDecl) / && cur == fake && !/ prev / {
            s = $0; sub(/ '"'"'.*$/, "", s); n = split(s, w, " "); print w[n] }' "$src.ast")
    if [ -n "$new" ]; then
        echo "decls.sh: FAIL: $h declares what ESP-IDF's $h does not: $(echo $new)"
        fail=1
    fi
    n=$((n + 1))
done
echo "decls.sh: $n fake headers checked against ESP-IDF v5.5.5's"
exit $fail
