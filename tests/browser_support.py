"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, with every network
request recorded so tests can assert that a page made no request it should not."""
from __future__ import absolute_import

import os
import shutil

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path():
    for candidate in (os.environ.get("XCSCAN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def require_browser():
    """Return (playwright_sync_api_module, chromium_path) or skip/fail."""
    path = chromium_path()
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    if path is None or sync_api is None:
        msg = "headless Chromium tests need Debian's chromium and the playwright package"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (required under CI=true; .ci/run installs them)")
        pytest.skip(msg)
    return sync_api, path


@pytest.fixture
def browser_page():
    """A fresh page; ``page.requests_seen`` lists every URL the page asked for."""
    sync_api, path = require_browser()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        seen = []
        page.on("request", lambda req: seen.append(req.url))
        page.requests_seen = seen
        try:
            yield page
        finally:
            context.close()
            browser.close()
