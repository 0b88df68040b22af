#!/usr/bin/env python3
"""Read meson's testlog.json for tests/run.sh.

    testlog.py TESTLOG BUILD_DIR REPORT

Prints "PASSED FAILED SKIPPED WALL_SECONDS" for the tests in TESTLOG, and
appends to REPORT one tab-separated line per test that did not pass and per
part of a test that was skipped:

    KIND  BUILD_DIR  TEST  REASON

KIND is fail, skip (something a package or run.sh provides was missing),
facility (the machine lacks what no package can add: the test said
"SKIP (facility): ..."), part or part-facility (a test went on without one
of its parts: "PART SKIPPED[ (facility)]: ...").  Reasons come from the
test's own FAIL/SKIP lines.  Every result meson can record that is not OK,
EXPECTEDFAIL or SKIP counts as failed.
"""
import json
import re
import sys


def main():
    log, build, report = sys.argv[1], sys.argv[2], sys.argv[3]
    passed = failed = skipped = 0
    start = end = None
    rows = []
    for line in open(log):
        line = line.strip()
        if not line:
            continue
        t = json.loads(line)
        result, name = t.get("result"), t.get("name", "?")
        out = (t.get("stderr") or "") + (t.get("stdout") or "")
        if t.get("starttime") is not None:
            s, e = t["starttime"], t["starttime"] + (t.get("duration") or 0)
            start = s if start is None else min(start, s)
            end = e if end is None else max(end, e)
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
            m = re.findall(r"SKIP( \(facility\))?: (.*)", out)
            if m:
                rows.append(("facility" if m[-1][0] else "skip", name, m[-1][1]))
            else:
                rows.append(("skip", name, "no reason given"))
        else:
            failed += 1
            m = re.findall(r"FAIL: (.*)", out)
            rows.append(("fail", name, m[-1] if m else "%s (exit %s)" % (result, t.get("returncode"))))
        for facility, why in re.findall(r"PART SKIPPED( \(facility\))?: (.*)", out):
            rows.append(("part-facility" if facility else "part", name, why))
    with open(report, "a") as f:
        for kind, name, why in rows:
            f.write("%s\t%s\t%s\t%s\n" % (kind, build, name, why.replace("\t", " ")))
    print(passed, failed, skipped, int(end - start) if start is not None else 0)


main()
