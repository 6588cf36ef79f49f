"""The walk explorer in JupyterLab itself: a server on 127.0.0.1 serving a copy of chapter 8's
explorer cells, driven in headless Chromium. It runs the cells, changes the destination, and sees
the tracer's steps change, with the step-through's buttons working inside the widget."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "notebooks" / "08-walk-same-node.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 over a folder with a copy of chapter 8's first cell and its
    explorer cells (never the chapter itself: JupyterLab saves what it runs); yields the
    notebook's URL with its token."""
    folder = tmp_path_factory.mktemp("lab")
    chapter = json.loads(CHAPTER.read_text())
    first = next(c for c in chapter["cells"] if c["cell_type"] == "code")  # `demo = book.chapter("08")`
    kept = [first] + [c for c in chapter["cells"] if c.get("id") in ("explorer-intro", "explorer")]
    for cell in kept:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (folder / "explorer.ipynb").write_text(json.dumps({**chapter, "cells": kept}))
    token, port = secrets.token_hex(16), _free_port()
    config = folder / ".config"
    (config / "labconfig").mkdir(parents=True)
    # no build check and no language servers: JupyterLab would look for node and npm, which it needs only to
    # rebuild extensions (its assets and ipywidgets' come prebuilt); PATH below hides them too
    (config / "labconfig" / "page_config.json").write_text(json.dumps({"buildCheck": False, "buildAvailable": False}))
    (config / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_lsp": False}}}))
    news = folder / ".settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))  # no question about news
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "JUPYTER_CONFIG_DIR": str(config),
           "JUPYTERLAB_SETTINGS_DIR": str(folder / ".settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / ".workspaces"), "JUPYTER_RUNTIME_DIR": str(folder / ".runtime")}
    env.pop("AMBIENTLAB_CAPTURE", None)  # the chapter's own capture
    command = [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={folder}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly",
               *(["--allow-root"] if os.geteuid() == 0 else [])]
    log = folder / "lab.log"
    with log.open("w") as errors:
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as answer:
                    answer.read()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"jupyter lab exited: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer within 60 s")
        yield f"{base}/lab/tree/explorer.ipynb?token={token}&reset"
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def test_the_explorer_runs_in_jupyterlab_and_walks_again_on_a_change(browser: Any, lab: str) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(lab)
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60000)
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60000)  # cells run before this are dropped
        page.locator(".jp-Notebook .jp-Cell").first.click()
        for _ in range(3):  # the chapter's first code cell, the explorer's introduction, the explorer
            page.keyboard.press("Shift+Enter")
        destination = page.get_by_placeholder("a listed one, or an address")
        destination.wait_for(timeout=90000)
        player = page.locator(".jp-OutputArea .al-player")
        player.wait_for(timeout=60000)
        steps = page.locator(".jp-OutputArea .al-player + ol > li")
        assert "10.96.183.192:9080" in steps.first.inner_text()
        player.locator("[data-act=next]").click()
        assert player.locator(".al-count").inner_text() == "step 2 of 15"  # its script runs inside the widget
        assert "mangle PRE-15" in player.locator(".al-caption").inner_text()

        destination.fill("pod reviews-v2 (10.244.2.5)")
        destination.press("Enter")
        page.wait_for_function(
            "() => { const li = document.querySelector('.jp-OutputArea .al-player + ol > li');"
            " return li && li.innerText.includes('10.244.2.5:9080'); }", timeout=60000)
        destination.fill("10.9.9.9")
        destination.press("Enter")
        problem = page.locator(".jp-OutputArea .al-problem")
        problem.wait_for(timeout=60000)
        assert "no pod, service or node" in problem.inner_text()
        assert not errors, errors
    finally:
        context.close()
