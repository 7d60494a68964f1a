#!/usr/bin/env python3
"""Checks the repository's Markdown and that nothing refers to a path outside the repository.

    docs_check.py [ROOT]

- Every relative link of every Markdown file (`[text](path)`, `[text](path#heading)`,
  `[text](#heading)`, `[id]: path`) must name a file or directory that exists inside ROOT, and a
  heading of the target file must give the anchor (GitHub's rule: lower case, punctuation
  dropped, spaces to hyphens, `-1`, `-2`... for repeats). Links in code are not links.
  Links with a scheme (`https:`, `mailto:`) are not checked.
- No file of the repository (tracked, or new and not ignored) mentions `../shared`, a
  directory beside the repository that users do not have. The one exception is the default of
  `$QDRANT_OPENAPI_DIR` in e2e/qdrant/conformance.py, where developers keep Qdrant's OpenAPI
  documents (and this check and its test, which name the pattern).

ROOT defaults to the repository this file is in. Prints every problem; exit status 1 if any.
"""

import re
import subprocess
import sys
from pathlib import Path

OUTSIDE = "../shared"
OUTSIDE_ALLOWED = {"e2e/qdrant/conformance.py", "e2e/docs_check.py", "e2e/test_docs_check.py"}
SKIP_DIRS = {".git", "target", ".e2e", "node_modules"}

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text):
    """(line number, line, line with its code spans blanked) outside fenced code blocks."""
    fenced = False
    for n, line in enumerate(text.split("\n"), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line, CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)


def slug(heading):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)  # keeps letters, digits, '_', '-' and spaces
    return text.replace(" ", "-")


def anchors(path):
    seen, out = {}, set()
    for _, line, _ in prose_lines(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2).replace("`", ""))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(text):
    for n, _, line in prose_lines(text):
        for m in INLINE.finditer(line):
            yield n, m.group(1)
        m = REFERENCE.match(line)
        if m:
            yield n, m.group(1)


def markdown_files(root):
    for path in sorted(root.rglob("*.md")):
        if not SKIP_DIRS.intersection(path.relative_to(root).parts):
            yield path


def check_links(root):
    problems = []
    for md in markdown_files(root):
        rel = md.relative_to(root)
        for n, target in links(md.read_text(encoding="utf-8")):
            if not target or SCHEME.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            dest = (md.parent / path_part).resolve() if path_part else md.resolve()
            where = f"{rel}:{n}: link {target!r}"
            try:
                dest.relative_to(root.resolve())
            except ValueError:
                problems.append(f"{where} leads outside the repository")
                continue
            if not dest.exists():
                problems.append(f"{where}: {dest.relative_to(root.resolve())} does not exist")
                continue
            if anchor:
                if dest.is_dir() or dest.suffix.lower() != ".md":
                    problems.append(f"{where}: an anchor into something that is not Markdown")
                elif anchor not in anchors(dest):
                    problems.append(f"{where}: no heading of {dest.relative_to(root.resolve())} gives #{anchor}")
    return problems


def repository_files(root):
    """Tracked files and new ones that are not ignored; every file when ROOT is no git work tree."""
    r = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       capture_output=True, text=True)
    if r.returncode == 0:
        return [root / p for p in r.stdout.split("\0") if p]
    return [p for p in root.rglob("*") if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(root).parts)]


def check_outside_references(root):
    problems = []
    for path in repository_files(root):
        rel = path.relative_to(root).as_posix()
        if rel in OUTSIDE_ALLOWED or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.split("\n"), 1):
            if OUTSIDE in line:
                problems.append(f"{rel}:{n}: refers to {OUTSIDE}, outside the repository")
    return problems


def check(root):
    return check_links(root) + check_outside_references(root)


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    problems = check(root)
    for p in problems:
        print(f"FAIL: {p}")
    if problems:
        print(f"{len(problems)} problem(s) in the documentation")
        return 1
    n = sum(1 for _ in markdown_files(root))
    print(f"every relative link of {n} Markdown files resolves, and nothing refers to {OUTSIDE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
