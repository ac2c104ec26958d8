"""The demo in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

    .venv/bin/pytest -m browser tests/test_browser.py
    GENNORM_SAVE_SCREENSHOT=1 GENNORM_DEMO_MODELS=models .venv/bin/pytest -m browser tests/test_browser.py

Loads the page, checks that it opens on the built-in scenes set though a user's export
(my-p2p-nc) sorts before it, uploads a label map from assets/, clicks Translate, waits for one
output per model, opens the statistics view of one model and the zoo tab (table with the
FID/KID protocol, training curves) and takes screenshots (into pytest's tmp dir; also to
docs/demo.png and docs/demo-zoo.png when GENNORM_SAVE_SCREENSHOT=1). Every label, caption and
legend entry is checked to show its whole text (none cut off or hidden under a button).
Models: $GENNORM_DEMO_MODELS (e.g. the real zoo with an export beside it) or, by default, three
tiny untrained ones and the export (their outputs are noise; the test checks the plumbing, not quality).
Skips when /usr/bin/chromium is absent (`apt-get install chromium`); Playwright's own browser
download is not used.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_limits import full_temp_dir  # noqa: F401  (a fixture: a 1 MB tmpfs as Gradio's temp folder)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*"),  # gradio's pandas use
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} not found: install Debian's chromium package "
                                                       "(apt-get install chromium) to run the browser tests"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    pytest.importorskip("playwright.sync_api")
    from test_demo import NORMS, _free_port, write_tiny_model

    from gennorm.apps import demo
    from gennorm.zoo import BUILTIN_SET, default_set, list_models, model_sets

    models = os.environ.get("GENNORM_DEMO_MODELS")
    if models:
        root = Path(models)
    else:
        root = tmp_path_factory.mktemp("zoo") / "models"
        for k, norm in enumerate(NORMS):
            write_tiny_model(root / f"scenes-{norm}", norm, fid=30.0 - k)
        write_tiny_model(root / "my-p2p-nc", "nc", fid=40.0)  # a user's export: its set sorts first
    sets = model_sets(root)
    assert default_set(sets) == BUILTIN_SET
    logged = [i.name for i in list_models(root) if i.training_log()]
    app = demo.build_app(root, device="cpu")
    _, url, _ = demo.launch(app, "127.0.0.1", _free_port(), prevent_thread_lock=True, quiet=True)
    yield url, [i.name for i in sets[BUILTIN_SET]], logged
    app.close()


# [text, scrollWidth, clientWidth, scrollHeight, clientHeight] of each element; and whether it
# overlaps an icon button of its block (the download button covered the end of the image labels)
SHOWN = """(selector) => [...document.querySelectorAll(selector)].map(e => {
    const r = e.getBoundingClientRect();
    const block = e.closest('.block');
    const covered = block ? [...block.querySelectorAll('.icon-button-wrapper button')].some(b => {
        const q = b.getBoundingClientRect();
        return q.width > 0 && q.left < r.right && q.right > r.left && q.top < r.bottom && q.bottom > r.top; }) : false;
    return [e.textContent.trim(), e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight, covered]; })"""


def _open(browser, url: str):
    """The demo's page at 1440 x 1000, once its translate button shows (the app has loaded)."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(url, wait_until="domcontentloaded", timeout=120_000)
    expect(page.locator("#translate-button")).to_be_visible(timeout=120_000)
    return page


def _shown_whole(page, selector: str) -> list[str]:
    """The texts of `selector`'s elements, each asserted to show whole (not cut, not covered)."""
    items = page.evaluate(SHOWN, selector)
    assert items, selector
    for text, sw, cw, sh, ch, covered in items:
        assert sw <= cw and sh <= ch and not covered, (selector, text, sw, cw, sh, ch, covered)
    return [item[0] for item in items]


def test_upload_translate_screenshot(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, names, logged = served
    example = sorted((REPO / "assets").glob("*.png"))[0]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = _open(browser, url)
            expect(page.locator("#model-set input")).to_have_value("scenes")  # not the export's set
            page.locator("#input-image input[type=file]").set_input_files(str(example))
            expect(page.locator("#input-image img").first).to_be_visible(timeout=60_000)
            page.locator("#translate-button").click()
            expect(page.locator("#status")).to_contain_text(" ms", timeout=180_000)
            for k, name in enumerate(names):
                slot = page.locator(f"#output-{k}")
                expect(slot.locator("img").first).to_be_visible(timeout=60_000)
                expect(slot).to_contain_text(name)
                expect(slot).to_contain_text(" ms")
            expect(page.locator("#slider img").first).to_be_visible(timeout=60_000)
            expect(page.locator("#status")).to_contain_text("warm-up excluded")
            labels = _shown_whole(page, "[id^=output-] label[data-testid=block-label]")
            assert [t.split(" ")[0] for t in labels] == names and all(t.endswith(" ms") for t in labels), labels
            page.get_by_text("Statistics: what each norm normalizes by").click()
            page.locator("#stats-button").click()
            expect(page.locator("#stats-note")).to_contain_text("maps from", timeout=60_000)
            expect(page.locator("#stats-gallery img").first).to_be_visible(timeout=60_000)
            page.wait_for_timeout(500)  # let the images finish fading in
            captions = _shown_whole(page, "#stats-gallery .caption-label")
            assert any(c.startswith("NC window std · ") for c in captions), captions
            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
            page.get_by_role("tab", name="Model zoo").click()
            expect(page.locator("#zoo-table")).to_contain_text(names[0], timeout=30_000)
            expect(page.locator("#zoo-table")).to_contain_text("FID/KID protocol")
            expect(page.locator("#training-curves")).to_be_visible(timeout=30_000)
            page.wait_for_timeout(500)
            # the legend: every model's whole name, inside the plot's block (it was cut to its title, "model")
            legend = page.evaluate("""() => {
                const block = document.querySelector('#training-curves').getBoundingClientRect();
                return [...document.querySelectorAll('#training-curves .role-legend-label text')].map(t => {
                    const r = t.getBoundingClientRect();
                    return [t.textContent, r.top >= block.top && r.bottom <= block.bottom && r.right <= block.right];
                }); }""")
            assert sorted(name for name, _ in legend) == sorted(logged) and all(inside for _, inside in legend), legend
            page.screenshot(path=str(tmp_path / "zoo.png"), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("GENNORM_SAVE_SCREENSHOT") == "1":
        from PIL import Image

        (REPO / "docs").mkdir(exist_ok=True)
        for name in ("demo.png", "zoo.png"):  # 256-colour palette: a third of the size, same look
            with Image.open(tmp_path / name) as im:
                out = REPO / "docs" / ("demo-zoo.png" if name == "zoo.png" else name)
                im.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    keep = os.environ.get("GENNORM_SCREENSHOT_DIR")
    if keep:
        for name in ("demo.png", "zoo.png"):
            shutil.copyfile(tmp_path / name, Path(keep) / name)


def test_a_full_temp_folder_is_told_in_the_page(full_temp_dir, tmp_path):
    """Before: a translation into a full temp folder showed a bare "Error", an upload nothing useful
    (HTTP 500). Now both toasts say that the server's temp space is full."""
    from playwright.sync_api import expect, sync_playwright
    from test_demo import _free_port, write_tiny_model

    from gennorm.apps import demo
    from gennorm.apps.public import TEMP_FULL

    root = tmp_path / "models"
    write_tiny_model(root / "scenes-instance", "instance", fid=30.0)
    app = demo.build_app(root, device="cpu")
    _, url, _ = demo.launch(app, "127.0.0.1", _free_port(), prevent_thread_lock=True, quiet=True)
    examples = sorted((REPO / "assets").glob("*.png"))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                page = _open(browser, url)
                page.locator("#input-image input[type=file]").set_input_files(str(examples[0]))
                expect(page.locator("#input-image img").first).to_be_visible(timeout=60_000)
                with open(full_temp_dir / "filler", "wb") as f:  # now the folder fills up
                    with pytest.raises(OSError):
                        while True:
                            f.write(b"\0" * 65536)
                            f.flush()
                page.locator("#translate-button").click()
                expect(page.get_by_text(TEMP_FULL)).to_be_visible(timeout=60_000)
                page.reload()
                expect(page.locator("#translate-button")).to_be_visible(timeout=120_000)
                page.locator("#input-image input[type=file]").set_input_files(str(examples[1]))
                expect(page.get_by_text(f"HTTP 507: {TEMP_FULL}")).to_be_visible(timeout=60_000)
            finally:
                browser.close()
    finally:
        app.close()
