#!/usr/bin/env python3
"""Check that the source tree matches docs/ARCHITECTURE.md.

- Every module folder's #include "..." lines name only headers of the
  modules the document's layering block allows it to use (or its own).
- A private header (*_i.h) is included only from its own module.
- Every .c and .h file of a module is named in the document, and every
  file the document names (module/file.c or .h) exists.

Usage: layering.py SOURCE_ROOT. Exit 0 when all holds, 1 with one line per
breach.
"""
import os
import re
import sys

root = sys.argv[1]
doc = open(os.path.join(root, "docs", "ARCHITECTURE.md")).read()
m = re.search(r"<!-- layering\n(.*?)-->", doc, re.S)
if not m:
    print("docs/ARCHITECTURE.md: no <!-- layering ... --> block")
    sys.exit(1)
uses = {}
for line in m.group(1).strip().splitlines():
    mod, _, rest = line.partition(":")
    uses[mod.strip()] = set(rest.split())

# header name -> module that owns it
owner = {}
for mod in uses:
    d = os.path.join(root, mod)
    if not os.path.isdir(d):
        continue
    for f in os.listdir(d):
        if f.endswith(".h"):
            owner[f] = mod

bad = []
named = set(re.findall(r"\b((?:%s)/[A-Za-z0-9_.-]+\.[ch])\b" % "|".join(map(re.escape, uses)), doc))
for mod in uses:
    d = os.path.join(root, mod)
    if not os.path.isdir(d):
        bad.append("module %s/ is in the layering block but not in the tree" % mod)
        continue
    for f in sorted(os.listdir(d)):
        if not f.endswith((".c", ".h")):
            continue
        rel = "%s/%s" % (mod, f)
        if rel not in named:
            bad.append("%s is not described in docs/ARCHITECTURE.md" % rel)
        for n, line in enumerate(open(os.path.join(d, f), errors="replace"), 1):
            inc = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not inc:
                continue
            h = os.path.basename(inc.group(1))
            o = owner.get(h)
            if o is None or o == mod:
                continue
            if h.endswith("_i.h"):
                bad.append("%s:%d includes %s, a private header of %s/" % (rel, n, h, o))
            elif "*" not in uses[mod] and o not in uses[mod]:
                bad.append("%s:%d includes %s: %s/ may not use %s/" % (rel, n, h, mod, o))
for rel in sorted(named):
    if not os.path.exists(os.path.join(root, rel)):
        bad.append("docs/ARCHITECTURE.md names %s, which does not exist" % rel)
# folders with C sources that the block leaves out
for d in sorted(os.listdir(root)):
    p = os.path.join(root, d)
    if d in uses or d in ("tests", "bench", "build", "examples", "tools", "docs") or d.startswith(("build", ".")):
        continue
    if os.path.isdir(p) and any(f.endswith(".c") for f in os.listdir(p)):
        bad.append("folder %s/ holds C sources but is not in the layering block" % d)
for b in bad:
    print(b)
print("layering: %d modules, %d files named, %d problems" % (len(uses), len(named), len(bad)))
sys.exit(1 if bad else 0)
