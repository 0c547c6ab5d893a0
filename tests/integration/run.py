#!/usr/bin/python3
"""Runs the integration suites (tests/integration/test_*.py) with unittest.

    run.py [--counts FILE] [-k PATTERN] [MODULE ...]

Prints each suite's counts, writes "passed failed" totals to FILE, exits
non-zero on any failure or error (including a suite that fails to load or
whose stack fails to start or stop cleanly).
"""

import argparse
import glob
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def count(result):
    """(passed, failed, skipped) of one unittest result, counting test methods
    (a test with failing subtests is one failure; a failing setUpModule or
    tearDownModule is one failure of its own)."""
    failed_tests, fixtures = set(), 0
    for t, _ in result.failures + result.errors:
        case = getattr(t, "test_case", t)          # a _SubTest names its test
        if isinstance(case, unittest.TestCase) and type(case).__name__ != "_ErrorHolder":
            failed_tests.add(case.id())
        else:
            fixtures += 1
    for t in result.unexpectedSuccesses:
        failed_tests.add(t.id())
    skipped = {getattr(t, "test_case", t).id() for t, _ in result.skipped} - failed_tests
    passed = result.testsRun - len(failed_tests) - len(skipped)
    return max(passed, 0), len(failed_tests) + fixtures, len(skipped)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", help="write 'passed failed' totals to this file")
    ap.add_argument("-k", dest="patterns", action="append",
                    help="only tests whose name contains this (unittest -k)")
    ap.add_argument("-f", "--failfast", action="store_true")
    ap.add_argument("modules", nargs="*", help="test module names (default: all)")
    args = ap.parse_args(argv)

    sys.path.insert(0, HERE)
    names = args.modules or sorted(os.path.splitext(os.path.basename(p))[0]
                                   for p in glob.glob(os.path.join(HERE, "test_*.py")))
    names = [n[:-3] if n.endswith(".py") else os.path.basename(n) for n in names]
    totals = [0, 0, 0]
    lines = []
    started = time.monotonic()
    for name in names:
        loader = unittest.TestLoader()
        if args.patterns:
            loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in args.patterns]
        print(f"\n=== {name} ===", flush=True)
        t0 = time.monotonic()
        try:
            suite = loader.loadTestsFromName(name)
        except Exception as e:  # an import error is one failure
            print(f"{name}: cannot load: {type(e).__name__}: {e}", flush=True)
            lines.append(f"{name}: 0 passed, 1 failed (load error)")
            totals[1] += 1
            continue
        if suite.countTestCases() == 0:
            lines.append(f"{name}: no tests selected")
            continue
        runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                         failfast=args.failfast)
        result = runner.run(suite)
        passed, failed, skipped = count(result)
        totals[0] += passed
        totals[1] += failed
        totals[2] += skipped
        lines.append(f"{name}: {passed} passed, {failed} failed, {skipped} skipped"
                     f" ({time.monotonic() - t0:.1f}s)")
        sys.stdout.flush()

    print("\n=== integration summary ===")
    for line in lines:
        print(line)
    print(f"integration: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped"
          f" ({time.monotonic() - started:.1f}s)", flush=True)
    if args.counts:
        with open(args.counts, "w") as f:
            f.write(f"{totals[0]} {totals[1]}\n")
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
