#!/usr/bin/env python3
"""Keeps docs/library.md honest: every fenced code block in it must be a snippet of a compiled, tested
source file. A block is preceded by a line

    <!-- snippet: examples/library/executor_basics.cpp#submit-with -->

naming a file (relative to the repository root) and a snippet: the lines between two marker lines
`// [submit-with]` (or `# [submit-with]` in CMake and shell files) in that file. The block must equal
those lines with their common indentation removed. ```python blocks are exempt: they show the Python
that the C++ mirrors (the seed tutorials), which is not part of this repository.

Usage: check_docs.py <repository root> <markdown file> [--fix]
--fix rewrites each block from its snippet instead of checking (after editing an example).
"""
import difflib
import re
import sys
import textwrap
from pathlib import Path

SNIPPET_REF = re.compile(r"^<!--\s*snippet:\s*(\S+?)#(\S+)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")


def snippet(root, path, name):
    lines = (root / path).read_text(encoding="utf-8").splitlines()
    marker = re.compile(r"^\s*(//|#)\s*\[" + re.escape(name) + r"\]\s*$")
    at = [i for i, line in enumerate(lines) if marker.match(line)]
    if len(at) != 2:
        raise ValueError(f"{path}: expected 2 marker lines [{name}], found {len(at)}")
    return textwrap.dedent("\n".join(lines[at[0] + 1 : at[1]])).strip("\n")


def main(argv):
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3] != "--fix"):
        print(__doc__, file=sys.stderr)
        return 2
    root, doc, fix = Path(argv[1]), Path(argv[2]), len(argv) == 4
    lines = doc.read_text(encoding="utf-8").splitlines()
    out, errors, checked, i = [], [], 0, 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            out.append(lines[i])
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(1)), None)
        if end is None:
            errors.append(f"{doc}:{i + 1}: unclosed code block")
            break
        body = "\n".join(lines[i + 1 : end])
        ref = SNIPPET_REF.match(lines[i - 1]) if i > 0 else None
        if fence.group(2) == "python":
            pass
        elif not ref:
            errors.append(f"{doc}:{i + 1}: code block without a <!-- snippet: file#name --> line before it")
        else:
            checked += 1
            try:
                expected = snippet(root, ref.group(1), ref.group(2))
            except (OSError, ValueError) as e:
                errors.append(f"{doc}:{i}: {e}")
            else:
                if fix:
                    body = expected
                elif body != expected:
                    diff = difflib.unified_diff(expected.splitlines(), body.splitlines(),
                                                f"{ref.group(1)}#{ref.group(2)}", f"{doc}:{i + 2}", lineterm="")
                    errors.append("\n".join(diff))
        out.extend([lines[i], *([body] if body else []), lines[end]])
        i = end + 1
    if fix:
        doc.write_text("\n".join(out) + "\n", encoding="utf-8")
    for e in errors:
        print(e, file=sys.stderr)
    if not errors:
        print(f"{doc}: {checked} code blocks match their snippets")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
