"""The report pages in a real browser: headless Chromium (the OS package at /usr/bin/chromium)
driven by Playwright. Each page loads with no console error and no network request, every plot
draws (an SVG with traces), the key numbers shown equal the JSON, and a screenshot is saved.

`make test` installs Chromium and Playwright and sets SEEDCHIP_REQUIRE_BROWSER=1, so there these
tests fail rather than skip when the browser is missing; a bare `pytest` skips them then."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from seedchip.report import write_report
from seedchip.report.page import show

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def _unavailable(why: str):
    if os.environ.get("SEEDCHIP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why}: `make test` installs it (apt-get install chromium; pip install playwright)")
    pytest.skip(f"{why} (make test installs it)")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (the system's; Playwright never downloads one)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed")
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is missing")
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    yield b
    b.close()
    pw.stop()


def _lookup(d, key: str):
    for part in key.split("."):
        if part == "length":
            d = len(d)
        elif isinstance(d, list):
            d = d[int(part)]
        else:
            d = d[part]
    return d


def check_page(browser, html: Path, result: dict, shot: Path) -> dict:
    """Open ``html``; assert no console error or network request, every plot drawn, the key numbers
    equal ``result``; save a screenshot to ``shot``. Returns counts for the caller to check."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
    page.goto(html.as_uri())
    page.wait_for_function("document.body.dataset.drawn === 'all'", timeout=20000)     # every figure drawn
    plots = page.eval_on_selector_all(".plot", "ds => ds.map(d => [d.id, d.querySelectorAll('svg.main-svg .trace, "
                                               "svg.main-svg .point, svg.main-svg .bars path').length, "
                                               "d.getBoundingClientRect().height])")
    kpis = page.eval_on_selector_all(".kpi", "ks => ks.map(k => [k.dataset.key, k.dataset.value, k.dataset.dim, "
                                             "k.querySelector('.kpi-value').textContent])")
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert not errors, f"{html.name}: console errors {errors[:3]}"
    assert not requests, f"{html.name}: network requests {requests[:3]}"
    assert plots, f"{html.name}: no plots"
    for fid, marks, height in plots:
        assert marks > 0 and height > 100, f"{html.name}: {fid} drew nothing ({marks} marks, {height}px)"
    checked = 0
    for key, raw, dim, text in kpis:
        if not key:
            continue
        value = _lookup(result, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert float(raw) == pytest.approx(float(value), rel=1e-12), f"{html.name}: {key}"
        assert text == show(value, dim), f"{html.name}: {key} shows {text!r}, the JSON {value!r}"
        checked += 1
    assert shot.stat().st_size > 10_000
    return {"plots": len(plots), "kpis": checked}


def _page(results, kind: str, tmp_path: Path) -> tuple[Path, dict]:
    src = results[kind]
    html = tmp_path / f"{kind}.html"
    write_report(src, html)
    if isinstance(src, dict):
        return html, src
    if kind == "plan":
        return html, json.loads((src / "plan.json").read_text())
    from seedchip.explore.stored import stored_run
    return html, stored_run(src)


@pytest.mark.parametrize("kind, min_plots", [("simulate", 2), ("silicon", 4), ("explore", 2), ("plan", 4),
                                             ("estimate", 2), ("op", 1), ("capacity", 3), ("run", 1)])
def test_page_renders_in_chromium(browser, results, tmp_path, kind, min_plots):
    html, result = _page(results, kind, tmp_path)
    got = check_page(browser, html, result, tmp_path / f"{kind}.png")
    assert got["plots"] >= min_plots and got["kpis"] >= 3
