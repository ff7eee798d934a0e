#!/usr/bin/env python3
"""The constants of tests/fake-idf's headers against ESP-IDF's.

decls.sh compares the fakes' prototypes with ESP-IDF's; this compares their
values: every enum constant and every object-like integer macro a fake
header defines is compiled on the host with the fakes (their value), then
asserted equal, with _Static_assert, in a file that includes the real
header, compiled for ESP32-C3 by the header kit's `check`. A constant ESP-IDF
does not have, or has with another value, fails.

usage: consts.py CHECK OUTDIR SDKCONFIG_DIR
Exits 77 (skipped) when CHECK or clang is missing.
"""
import os
import re
import shutil
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
include = os.path.join(here, "include")
standin = os.path.join(here, "..", "esp-idf", "stand-in", "mbedtls")


def skip(why):
    print(f"consts.py: skipped: {why}")
    sys.exit(77)


def constants(text):
    """Enum constants and object-like integer macros, in order."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)
    names = []
    for body in re.findall(r"\benum\b[^{;]*\{([^}]*)\}", text):
        for item in body.split(","):
            m = re.match(r"\s*([A-Za-z_]\w*)", item)
            if m:
                names.append(m.group(1))
    for name, value in re.findall(r"^\s*#\s*define\s+([A-Za-z_]\w*)[ \t]+(.+)$", text, flags=re.M):
        if name.startswith("FAKE_IDF") or value.lstrip().startswith(("__attribute__", '"', "{")):
            continue
        names.append(name)
    return list(dict.fromkeys(names))


def main():
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    check, out, sdkconfig = sys.argv[1:]
    if not os.access(check, os.X_OK):
        skip(f"{check} not found (the ESP-IDF header kit)")
    if not shutil.which("clang"):
        skip("clang not found")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)

    headers = {}
    for root, _, files in os.walk(include):
        for f in sorted(files):
            if f.endswith(".h"):
                path = os.path.join(root, f)
                names = constants(open(path).read())
                if names:
                    headers[os.path.relpath(path, include)] = names

    # the fakes' values, on the host; a macro that is no integer expression
    # (a type, an attribute) is not a constant
    prelude = '#include <stdio.h>\n#include "freertos/FreeRTOS.h"\n' + "".join(
        f'#include "{h}"\n' for h in sorted(headers))
    cc = ["cc", "-std=gnu17", "-w", "-I", include, "-I", sdkconfig]
    probe = os.path.join(out, "probe.c")
    for h, names in headers.items():
        kept = []
        for name in names:
            with open(probe, "w") as c:
                c.write(prelude + f"long long probe = (long long)({name});\n")
            if subprocess.run(cc + ["-c", probe, "-o", probe + ".o"], capture_output=True).returncode == 0:
                kept.append(name)
        headers[h] = kept
    src = os.path.join(out, "values.c")
    with open(src, "w") as c:
        c.write(prelude + "int main(void)\n{\n")
        for h, names in sorted(headers.items()):
            for n in names:
                c.write(f'    printf("%s %lld\\n", "{n}", (long long)({n}));\n')
        c.write("    return 0;\n}\n")
    exe = os.path.join(out, "values")
    r = subprocess.run(cc + [src, "-o", exe], capture_output=True, text=True)
    if r.returncode:
        print(r.stderr)
        print("consts.py: FAIL: the fakes' constants do not compile on the host")
        return 1
    values = dict(line.split() for line in subprocess.run([exe], capture_output=True, text=True,
                                                          check=True).stdout.splitlines())

    # the same values asserted against each real header
    fail = n = 0
    for h, names in sorted(headers.items()):
        if not names:
            continue
        src = os.path.join(out, h.replace("/", "_") + ".c")
        with open(src, "w") as c:
            c.write(f'#include "freertos/FreeRTOS.h"\n#include "{h}"\n')
            for name in names:
                c.write(f'_Static_assert((long long)({name}) == {values[name]}LL, "{name} is not {values[name]}");\n')
        r = subprocess.run([check, "-Werror", "-isystem" + standin, src],
                           capture_output=True, text=True)
        if r.returncode:
            print(r.stderr)
            print(f"consts.py: FAIL: {h}: its constants differ from ESP-IDF's")
            fail = 1
        n += len(names)
    print(f"consts.py: {n} constants of {len(headers)} fake headers checked against ESP-IDF v5.5.5's")
    return fail


sys.exit(main())
