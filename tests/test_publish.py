"""`make publish` puts a built book on a gh-pages branch with ghp-import, and pushes it only when
asked: run against a throwaway repository and a local bare remote."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT


def _git(*argv: str, cwd: Path) -> str:
    return subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_make_publish_commits_the_site_and_pushes_only_when_asked(tmp_path: Path) -> None:
    html = tmp_path / "html"
    (html / "_static").mkdir(parents=True)
    (html / "index.html").write_text("<html><body>the book</body></html>\n")
    (html / "_static" / "custom.css").write_text("body {}\n")
    remote, repo = tmp_path / "remote.git", tmp_path / "repo"
    _git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    _git("init", "-q", "-b", "main", str(repo), cwd=tmp_path)
    for key, value in (("user.name", "ambientlab test"), ("user.email", "test@ambientlab.invalid")):
        _git("config", key, value, cwd=repo)
    (repo / "README.md").write_text("a project\n")
    _git("add", "README.md", cwd=repo)
    _git("commit", "-q", "-m", "start", cwd=repo)
    _git("remote", "add", "origin", str(remote), cwd=repo)

    def publish(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["make", "-s", "-C", str(ROOT), "publish", f"HTML={html}", f"PUBLISH_REPO={repo}", *extra],
                              capture_output=True, text=True)

    done = publish()
    assert done.returncode == 0, done.stdout + done.stderr
    files = _git("ls-tree", "-r", "--name-only", "gh-pages", cwd=repo).split()
    assert sorted(files) == [".nojekyll", "_static/custom.css", "index.html"]
    assert _git("show", "gh-pages:index.html", cwd=repo) == "<html><body>the book</body></html>\n"
    assert _git("branch", "--show-current", cwd=repo).strip() == "main"  # the work tree is left alone
    assert _git("branch", "--list", cwd=remote).strip() == ""  # nothing pushed

    (html / "index.html").write_text("<html><body>the book, second edition</body></html>\n")
    done = publish("PUSH=origin")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _git("show", "gh-pages:index.html", cwd=remote) == "<html><body>the book, second edition</body></html>\n"
    assert len(_git("log", "--oneline", "gh-pages", cwd=remote).splitlines()) == 2  # history kept


def test_make_publish_without_a_built_book_says_what_to_do(tmp_path: Path) -> None:
    done = subprocess.run(["make", "-s", "-C", str(ROOT), "publish", f"HTML={tmp_path}"], capture_output=True, text=True)
    assert done.returncode != 0 and "run make book first" in done.stdout
