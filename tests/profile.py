#!/usr/bin/env python3
"""Where the integration tests spend their time.

    RPFS_TEST_TRACE=/tmp/traces meson test -C build ...
    tests/profile.py /tmp/traces [N]

Reads the timestamped `set -x` traces tests/integration/lib.sh writes under
RPFS_TEST_TRACE and prints, per test, its length and the N source lines
(file:line) that took longest in total: the time from a traced command to
the next traced command, summed over every time the line ran.
"""
import collections
import os
import re
import sys

LINE = re.compile(r'^\++(\d+\.\d+) (\S+:\d+) (.*)$')


def profile(path):
    steps = []
    with open(path, errors='replace') as f:
        for text in f:
            m = LINE.match(text)
            if m:
                steps.append((float(m.group(1)), m.group(2), m.group(3)[:90]))
    by_line = collections.defaultdict(lambda: [0.0, 0, ''])
    for (t0, where, cmd), (t1, _, _) in zip(steps, steps[1:]):
        e = by_line[where]
        e[0] += t1 - t0
        e[1] += 1
        e[2] = e[2] or cmd
    total = steps[-1][0] - steps[0][0] if len(steps) > 1 else 0.0
    return total, by_line


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip())
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    files = sorted(os.path.join(sys.argv[1], n) for n in os.listdir(sys.argv[1])
                   if n.endswith('.trace'))
    results = [(os.path.basename(p).rsplit('.', 2)[0],) + profile(p) for p in files]
    results.sort(key=lambda r: -r[1])
    for name, total, by_line in results:
        print(f'{total:8.1f} s  {name}')
        for where, (secs, runs, cmd) in sorted(by_line.items(), key=lambda kv: -kv[1][0])[:top]:
            print(f'    {secs:7.1f} s {runs:5d}x  {where:28s} {cmd}')


if __name__ == '__main__':
    main()
