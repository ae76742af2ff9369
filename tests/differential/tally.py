"""tally.py — the pass/fail count a differential test keeps and prints as
its closing line ("NAME: N passed, M failed")."""
import sys


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        """Counts cond; prints what on stderr when it is false."""
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what, file=sys.stderr)
        return cond

    def close(self, name):
        """Prints the closing line and exits 1 when anything failed."""
        print(f"{name}: {self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)
