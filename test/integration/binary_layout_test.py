"""The release binary's layout, on which a sidecar's memory depends (issue 5, idle RSS).

- What stays a shared library: libc and libm only. libstdc++, libgcc, jemalloc, spdlog, fmt,
  OpenSSL, libraft, libuv and liblz4 are linked in, so that a process maps only the parts it
  runs (src/main/CMakeLists.txt, cmake/dependencies.cmake).
- The code listed in src/main/hot_text.ld (what a sidecar and an agent run, scripts/hot-text)
  is placed together, in .text.hot_path, before the rest of the text.

Registered for release builds only: sanitizer builds link neither statically nor in this order.
"""

import os
import re
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TASKMESH_BIN", os.path.join(ROOT, "build", "src", "main", "taskmesh"))
HOT_TEXT = os.path.join(ROOT, "src", "main", "hot_text.ld")
SHARED_ALLOWED = {"libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2"}  # glibc


def run(*args):
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout


class BinaryLayoutTest(unittest.TestCase):
    def test_only_libc_and_libm_are_shared(self):
        needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", run("readelf", "-dW", BIN)))
        self.assertTrue(needed, "readelf found no NEEDED entry: not a dynamic executable?")
        self.assertLessEqual(needed, SHARED_ALLOWED,
                             f"shared libraries beyond libc and libm: {needed - SHARED_ALLOWED}")

    def test_listed_functions_are_placed_together(self):
        with open(HOT_TEXT) as f:
            listed = set(re.findall(r"^\s*\*\(\.text\.(\S+)\)\s*$", f.read(), re.M))
        self.assertGreater(len(listed), 500, f"{HOT_TEXT} lists too few functions")
        sections = {m.group(1): (int(m.group(2), 16), int(m.group(3), 16)) for m in re.finditer(
            r"\]\s+(\.text\S*)\s+PROGBITS\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)",
            run("readelf", "-SW", BIN))}
        self.assertIn(".text.hot_path", sections, "the link did not apply src/main/hot_text.ld")
        start, size = sections[".text.hot_path"]
        self.assertLess(start, sections[".text"][0], ".text.hot_path is not before .text")
        addresses = {}  # listed name -> addresses of the functions of that name
        for line in run("nm", "--defined-only", BIN).splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tTWw" and parts[2] in listed:
                addresses.setdefault(parts[2], []).append(int(parts[0], 16))
        placed, elsewhere = 0, []
        for name, where in addresses.items():
            if len(where) > 1:
                continue  # local functions of one name in several files: only one was listed
            if start <= where[0] < start + size:
                placed += 1
            else:
                elsewhere.append(name)
        # Functions the code no longer has are simply absent; those it has must all be placed.
        self.assertGreater(placed, 500, "too few listed functions are in the binary: "
                           "regenerate src/main/hot_text.ld with scripts/hot-text")
        self.assertEqual(elsewhere, [], "listed functions outside .text.hot_path")


if __name__ == "__main__":
    unittest.main()
