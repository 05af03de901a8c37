from browser_support import browser_page  # noqa: F401


def test_chromium_renders_a_local_file(browser_page, tmp_path):
    page_file = tmp_path / "p.html"
    page_file.write_text("<html><body><h1 id=t>信创 ok</h1></body></html>", encoding="utf-8")
    browser_page.goto(page_file.as_uri())
    assert browser_page.inner_text("#t") == "信创 ok"
    assert all(u.startswith("file://") for u in browser_page.requests_seen)
