#!/usr/bin/env python3
"""Worst-case stack of the core's entry points, from GCC's own numbers.

Reads the .su (-fstack-usage) and .ci (-fcallgraph-info=su) files that
scripts/size.sh leaves next to each object, and walks the call graph from
each root: worst(f) = frame(f) + max over callees of worst(callee).

memcpy/memset/memcmp are leaves in every libc and ROM the core runs on and
are counted as 0 B. Indirect calls are the port's flash callbacks (the core
calls no other function pointers): their own stack belongs to the port, so
they are reported as the depth at which the port is entered, not guessed.

Exit status: 1 when the budgeted root exceeds its budget, or when the graph
has recursion or a frame of unbounded dynamic size; 0 otherwise.
"""
import argparse
import glob
import os
import re
import sys

LIBC_LEAVES = {"memcpy", "memset", "memcmp"}
INDIRECT = "__indirect_call"

NODE = re.compile(r'^node: \{ title: "([^"]*)" label: "([^"]*)"')
EDGE = re.compile(r'^edge: \{ sourcename: "([^"]*)" targetname: "([^"]*)"(?: label: "([^"]*)")?')
FRAME = re.compile(r'(\d+) bytes \(([^)]*)\)')


class Graph:
    def __init__(self):
        self.frame = {}   # title -> bytes
        self.kind = {}    # title -> "static" | "dynamic" | "dynamic,bounded"
        self.name = {}    # title -> plain function name
        self.where = {}   # title -> file:line
        self.calls = {}   # title -> [(callee title, call site)]

    def load(self, ci_path):
        with open(ci_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = NODE.match(line)
                if m:
                    title, label = m.groups()
                    parts = label.split("\\n")
                    fm = FRAME.search(label)
                    if fm:  # defined in this unit (externals carry no frame)
                        self.frame[title] = int(fm.group(1))
                        self.kind[title] = fm.group(2)
                        self.name[title] = parts[0]
                        self.where[title] = parts[1] if len(parts) > 1 else "?"
                        self.calls.setdefault(title, [])
                    continue
                m = EDGE.match(line)
                if m:
                    src, dst, site = m.groups()
                    self.calls.setdefault(src, []).append((dst, site or "?"))


def analyse(g, root):
    """Return (worst, path, port_depth, port_site, problems) for root.

    worst: bytes on the deepest path inside the core; path: [(name, frame)];
    port_depth: the deepest stack at which a port callback is entered (None
    when none is); problems: recursion, unbounded frames, unknown callees.
    """
    memo = {}
    problems = []
    unknown = set()

    def visit(t, stack):
        if t in memo:
            return memo[t]
        if t in stack:
            cycle = " -> ".join(g.name.get(x, x) for x in stack[stack.index(t):] + [t])
            problems.append("recursion: " + cycle)
            return (0, [], None, None)
        fr = g.frame[t]
        if g.kind[t] == "dynamic":
            problems.append("%s (%s) has a frame of unbounded size" % (g.name[t], g.where[t]))
        best, best_path = 0, []
        port, port_site = None, None
        for callee, site in g.calls.get(t, []):
            if callee == INDIRECT:
                if port is None:
                    port, port_site = 0, site
                continue
            if callee not in g.frame:
                if callee not in LIBC_LEAVES:
                    unknown.add(callee)
                continue
            w, p, pd, ps = visit(callee, stack + [t])
            if w > best or not best_path:
                best, best_path = w, p
            if pd is not None and (port is None or pd > port):
                port, port_site = pd, ps
        res = (fr + best, [(g.name[t], fr)] + best_path,
               None if port is None else fr + port, port_site)
        memo[t] = res
        return res

    w, p, pd, ps = visit(root, [])
    for u in sorted(unknown):
        problems.append("calls %s, which is not part of the core" % u)
    return w, p, pd, ps, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", help="directory holding the .ci/.su files of one target")
    ap.add_argument("--label", default="", help="target name for the report")
    ap.add_argument("--budget-root", default="aloft_update_write")
    ap.add_argument("--budget", type=int, default=1536, help="bytes allowed for --budget-root")
    ap.add_argument("roots", nargs="*", default=["aloft_update_write", "aloft_update_begin",
                                                 "aloft_update_end", "aloft_update_set_boot", "aloft_update_resume",
                                                 "aloft_boot_select"])
    a = ap.parse_intermixed_args()

    g = Graph()
    cis = sorted(glob.glob(os.path.join(a.dir, "*.ci")))
    if not cis:
        print("stack.py: no .ci files in %s" % a.dir, file=sys.stderr)
        return 1
    for ci in cis:
        g.load(ci)

    failed = False
    print("worst-case stack, %s (budget: %s <= %d B; port callbacks' own stack not included)"
          % (a.label or a.dir, a.budget_root, a.budget))
    for root in a.roots:
        if root not in g.frame:
            print("  %-22s   n/a   (not in the core yet)" % root)
            continue
        w, path, pd, ps, problems = analyse(g, root)
        verdict = ""
        if root == a.budget_root:
            ok = w <= a.budget and not problems
            failed |= not ok
            verdict = "  ok" if ok else "  OVER BUDGET" if w > a.budget else "  FAILED"
        print("  %-22s %5d B%s" % (root, w, verdict))
        print("      deepest path: " + " -> ".join("%s %d" % (n, f) for n, f in path))
        if pd is not None:
            print("      port callback entered at up to %d B (%s), + the port's own stack" % (pd, ps))
        for pr in problems:
            print("      PROBLEM: " + pr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
