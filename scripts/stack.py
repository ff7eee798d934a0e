#!/usr/bin/env python3
"""Worst-case stack of aloft's entry points, from GCC's own numbers.

Reads the .su (-fstack-usage) and .ci (-fcallgraph-info=su) files that
scripts/size.sh leaves next to each object (of one or more directories: the
agent's roots call into the core), and walks the call graph from each root:
worst(f) = frame(f) + max over callees of worst(callee).

memcpy/memset/memcmp are leaves in every libc and ROM the code runs on and
are counted as 0 B. Indirect calls are the port's callbacks (flash, settings,
log...; neither the core nor the agent calls other function pointers): their
own stack belongs to the port, so they are reported as the depth at which the
port is entered, not guessed. The core calls nothing else outside itself. The
agent may call the C library (newlib's libc, libgcc's helpers; --libc): those
calls are not in the graph either, and are reported the same way, as the
depth at which the C library is entered (scripts/size.sh checks that newlib
defines each of them).

Exit status: 1 when a budgeted root exceeds its budget, or when the graph
has recursion, a frame of unbounded dynamic size or a callee that is defined
nowhere; 0 otherwise.
"""
import argparse
import collections
import glob
import os
import re
import sys

LIBC_LEAVES = {"memcpy", "memset", "memcmp"}
INDIRECT = "__indirect_call"
OWN = "aloft_"  # a callee outside the graph with this prefix is ours, missing

NODE = re.compile(r'^node: \{ title: "([^"]*)" label: "([^"]*)"')
EDGE = re.compile(r'^edge: \{ sourcename: "([^"]*)" targetname: "([^"]*)"(?: label: "([^"]*)")?')
FRAME = re.compile(r'(\d+) bytes \(([^)]*)\)')

# worst: bytes on the deepest path inside the graph; path: [(name, frame)];
# port: (deepest stack at which a port callback is entered, call site), or
# None; libc: {function: (deepest stack at which it is entered, call site)}.
Result = collections.namedtuple("Result", "worst path port libc")


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


def deeper(a, b):
    """The deeper of two (depth, site) entries, either of which may be None."""
    return b if a is None or (b is not None and b[0] > a[0]) else a


def analyse(g, root, libc_ok, name, callbacks=None):
    """Return (Result, problems) for root.

    problems: recursion, unbounded frames, callees defined nowhere (name:
    what the graph holds, for the message). With libc_ok, a callee outside the graph whose name does not start with aloft_
    is the C library's and goes into Result.libc instead.
    """
    memo = {}
    problems = []
    unknown = set()
    callbacks = callbacks or {}

    def targets(t):
        """What an indirect call in t may reach: the callbacks given for t's
        file (the core's own, e.g. the delta decoder's io), or None (a port's)."""
        for f, names in callbacks.items():
            if os.path.basename(g.where[t].split(":")[0]) == f:
                return [x for x in g.frame if g.name[x] in names]
        return None

    def visit(t, stack):
        if t in memo:
            return memo[t]
        if t in stack:
            cycle = " -> ".join(g.name.get(x, x) for x in stack[stack.index(t):] + [t])
            problems.append("recursion: " + cycle)
            return Result(0, [], None, {})
        fr = g.frame[t]
        if g.kind[t] == "dynamic":
            problems.append("%s (%s) has a frame of unbounded size" % (g.name[t], g.where[t]))
        best = Result(0, [], None, {})
        port, libc = None, {}
        calls = []
        for callee, site in g.calls.get(t, []):
            reach = targets(t) if callee == INDIRECT else None
            calls += [(c, site) for c in reach] if reach is not None else [(callee, site)]
        for callee, site in calls:
            if callee == INDIRECT:
                port = deeper(port, (0, site))
            elif callee in g.frame:
                r = visit(callee, stack + [t])
                if r.worst > best.worst or not best.path:
                    best = r
                port = deeper(port, r.port)
                for fn, entry in r.libc.items():
                    libc[fn] = deeper(libc.get(fn), entry)
            elif callee in LIBC_LEAVES:
                pass
            elif libc_ok and not callee.startswith(OWN):
                libc[callee] = deeper(libc.get(callee), (0, site))
            else:
                unknown.add(callee)
        res = Result(fr + best.worst, [(g.name[t], fr)] + best.path,
                     None if port is None else (fr + port[0], port[1]),
                     {fn: (fr + d, s) for fn, (d, s) in libc.items()})
        memo[t] = res
        return res

    res = visit(root, [])
    return res, problems + ["calls %s, which is not part of the %s" % (u, name) for u in sorted(unknown)]


def libc_line(libc):
    """'libc entered at up to N B (deepest at site; also ...)' for a root."""
    order = sorted(libc, key=lambda fn: (-libc[fn][0], fn))
    depth, site = libc[order[0]]
    also = "; also " + ", ".join(order[1:]) if len(order) > 1 else ""
    return ("libc entered at up to %d B (%s at %s%s), + libc's own stack"
            % (depth, order[0], site, also))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", help="directory holding the .ci/.su files of one target")
    ap.add_argument("--also", action="append", default=[], metavar="DIR",
                    help="load this directory's .ci files too (code the roots call into)")
    ap.add_argument("--name", default="core",
                    help="what the graph holds, for the report ('core', 'core or the agent')")
    ap.add_argument("--label", default="", help="target name for the report")
    ap.add_argument("--budget-root", default="aloft_update_write")
    ap.add_argument("--budget", type=int, default=1536, help="bytes allowed for --budget-root")
    ap.add_argument("--budget-all", action="store_true",
                    help="the budget applies to every root, not only to --budget-root")
    ap.add_argument("--libc", action="store_true",
                    help="callees outside the graph not named aloft_* are the C library's "
                         "(newlib, libgcc): report where it is entered instead of failing")
    ap.add_argument("--callbacks", action="append", default=[], metavar="FILE=F1,F2",
                    help="indirect calls made in FILE (a basename) go to these functions of the graph")
    ap.add_argument("roots", nargs="*", default=["aloft_update_write", "aloft_update_begin",
                                                 "aloft_update_end", "aloft_update_set_boot", "aloft_update_resume",
                                                 "aloft_boot_select"])
    a = ap.parse_intermixed_args()

    g = Graph()
    cis = sorted(glob.glob(os.path.join(a.dir, "*.ci")))
    if not cis:
        print("stack.py: no .ci files in %s" % a.dir, file=sys.stderr)
        return 1
    for d in a.also:
        cis += sorted(glob.glob(os.path.join(d, "*.ci")))
    for ci in cis:
        g.load(ci)

    failed = False
    width = max([22] + [len(r) for r in a.roots])
    print("worst-case stack, %s (budget: %s <= %d B; port callbacks'%s own stack not included)"
          % (a.label or a.dir, "each" if a.budget_all else a.budget_root, a.budget,
             " and libc's" if a.libc else ""))
    for root in a.roots:
        # a static function is titled "file:name": take it by its name when only one file has it
        named = [t for t in g.frame if g.name[t] == root and t != root]
        if root not in g.frame and len(named) == 1:
            root = named[0]
        if root not in g.frame:
            print("  %-*s   n/a   (not in the %s yet)" % (width, root, a.name))
            continue
        cbs = {f: set(n.split(",")) for f, n in (c.split("=", 1) for c in a.callbacks)}
        res, problems = analyse(g, root, a.libc, a.name, cbs)
        verdict = ""
        if a.budget_all or root == a.budget_root:
            ok = res.worst <= a.budget and not problems
            failed |= not ok
            verdict = "  ok" if ok else "  OVER BUDGET" if res.worst > a.budget else "  FAILED"
        print("  %-*s %5d B%s" % (width, root, res.worst, verdict))
        print("      deepest path: " + " -> ".join("%s %d" % (n, f) for n, f in res.path))
        if res.port is not None:
            print("      port callback entered at up to %d B (%s), + the port's own stack" % res.port)
        if res.libc:
            print("      " + libc_line(res.libc))
        for pr in problems:
            print("      PROBLEM: " + pr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
