#!/usr/bin/env python3
"""Tests of e2e/docs_check.py on small throwaway repositories: good links pass, and a missing
file, a missing heading, a link out of the repository and a mention of ../shared each fail."""

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

E2E = Path(__file__).resolve().parent
sys.path.insert(0, str(E2E))
import docs_check as dc  # noqa: E402

GOOD = {
    "README.md": "# Title\n\nSee [a](docs/a.md#some-heading), [dir](docs/) and [top](#title).\n"
                 "External: [k](https://kubernetes.io/x.md#nope).\n\n[ref]: docs/a.md\n",
    "docs/a.md": "# A\n\n## Some heading\n\n## The algorithm, as `elector.rs` runs it\n\n## Twice\n\n## Twice\n\n"
                 "Back to [the top](../README.md), [here](#the-algorithm-as-electorrs-runs-it), "
                 "[second](#twice-1).\n\nIn code: `[x](missing.md)`.\n\n```md\n[y](missing2.md)\n```\n",
    "e2e/qdrant/conformance.py": "DEFAULT = '../shared/qdrant-openapi'  # the one allowed\n",
}


class Repo:
    def __init__(self, files, git=True):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name) / "repo"
        for path, text in files.items():
            (self.root / path).parent.mkdir(parents=True, exist_ok=True)
            (self.root / path).write_text(text)
        if git:
            subprocess.run(["git", "init", "-q", str(self.root)], check=True)

    def __enter__(self):
        return self.root

    def __exit__(self, *exc):
        self.tmp.cleanup()


def with_change(path, text):
    files = dict(GOOD)
    files[path] = files.get(path, "") + text
    return files


class DocsCheck(unittest.TestCase):
    def test_good_links_anchors_code_and_the_allowed_exception_pass(self):
        for git in (True, False):
            with Repo(GOOD, git) as root:
                self.assertEqual(dc.check(root), [], f"git={git}")

    def test_a_missing_file_fails(self):
        with Repo(with_change("docs/a.md", "\n[gone](b.md)\n")) as root:
            self.assertEqual(dc.check(root), ["docs/a.md:19: link 'b.md': docs/b.md does not exist"])

    def test_a_missing_heading_fails(self):
        with Repo(with_change("README.md", "\n[x](docs/a.md#no-such-heading)\n")) as root:
            self.assertEqual(dc.check(root), ["README.md:8: link 'docs/a.md#no-such-heading': no heading of docs/a.md gives #no-such-heading"])

    def test_a_missing_reference_target_fails(self):
        with Repo(with_change("README.md", "\n[other]: docs/missing.md\n")) as root:
            self.assertEqual(dc.check(root), ["README.md:8: link 'docs/missing.md': docs/missing.md does not exist"])

    def test_a_link_out_of_the_repository_fails_even_when_the_target_exists(self):
        with Repo(with_change("docs/a.md", "\n[out](../../outside.md)\n")) as root:
            (root.parent / "outside.md").write_text("# Outside\n")
            self.assertEqual(dc.check(root), ["docs/a.md:19: link '../../outside.md' leads outside the repository"])

    def test_mentioning_the_shared_directory_fails_outside_the_one_exception(self):
        with Repo(with_change("e2e/run.sh", "cat ../shared/design/NOTES.md\n")) as root:
            self.assertEqual(dc.check(root), ["e2e/run.sh:1: refers to ../shared, outside the repository"])
        with Repo(with_change("docs/a.md", "\nSee ../shared/design/X.md.\n")) as root:
            self.assertEqual(dc.check(root), ["docs/a.md:19: refers to ../shared, outside the repository"])

    def test_ignored_files_are_not_the_repository(self):
        files = with_change(".gitignore", "scratch/\n")
        files["scratch/notes.txt"] = "../shared\n"
        with Repo(files) as root:
            self.assertEqual(dc.check(root), [])

    def test_github_anchors(self):
        self.assertEqual(dc.slug("Fencing: why a deposed leader does not write"), "fencing-why-a-deposed-leader-does-not-write")
        self.assertEqual(dc.slug("What `make test` runs".replace("`", "")), "what-make-test-runs")
        self.assertEqual(dc.slug("Scale-down 3 → 1 on Qdrant Pods"), "scale-down-3--1-on-qdrant-pods")

    def test_the_repository_passes_and_has_links_to_check(self):
        root = E2E.parent
        self.assertEqual(dc.check(root), [])
        relative = [t for md in dc.markdown_files(root) for _, t in dc.links(md.read_text()) if t and not dc.SCHEME.match(t)]
        self.assertGreater(len(relative), 30)
        self.assertIn("docs/leader-election.md", relative)


if __name__ == "__main__":
    unittest.main(verbosity=2)
