"""GX Data Docs read offline: styled, the validation list filled, each page naming its data asset and
data version, with every network request refused (as on a machine without internet)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support import mura

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("MURA_TEST_ARTIFACTS", "test-artifacts"))


def test_data_docs_render_styled_with_the_network_cut_off(tmp_path):
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "MURA_HOME": str(tmp_path / "home"), "MURA_REPO_ROOT": os.getcwd()}
    mura(
        env,
        "data",
        "synth",
        "--out",
        str(tmp_path / "data"),
        "--train-patients",
        "30",
        "--valid-patients",
        "8",
    )
    report = json.loads(
        mura(env, "data", "validate", "--data", str(tmp_path / "data"), "--json", check=False).stdout
    )
    index = Path(report["data_docs"].removeprefix("file://"))
    pages = [index, *sorted((index.parent / "validations").rglob("*.html"))]
    assert not [page for page in pages if "cdn" in page.read_text() or "unpkg.com" in page.read_text()]

    refused: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith("file:")
                else (refused.append(route.request.url), route.abort())
            ),
        )
        page.goto(index.as_uri())
        page.wait_for_load_state("load")
        # Bootstrap's reboot sets the system font stack; bootstrap-table (jQuery) fills the list.
        assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("-apple-system")
        assert page.evaluate("typeof window.jQuery") == "function"
        listed = page.locator("table[id$='-body-table']", has_text="Run Name").locator("tbody tr")
        assert listed.count() == 2
        assert f"{report['data_version']}" in listed.first.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "data_docs_offline.png"), full_page=True)
        manifest_page = next(page for page in pages if "mura_manifest" in page.parts)
        page.goto(manifest_page.as_uri())
        page.wait_for_load_state("load")
        text = page.inner_text("body")
        assert "Data asset: mura.manifest" in text and report["data_version"] in text
        browser.close()
    assert refused == []
