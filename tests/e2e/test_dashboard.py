"""The dashboard at GET /: its files, and headless Chromium training a network through it.

The browser is Debian's `chromium` package driven by Playwright's Python package; Playwright's
own browser downloads are never used. Without /usr/bin/chromium (or CONVTRAIN_CHROMIUM) the
browser test is skipped.
"""

from __future__ import annotations

import base64
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from service.api import create_app, dashboard
from service.config import Config
from tests import openapi_check
from tests.conftest import ROOT, gunicorn, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("CONVTRAIN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OUTPUT = ROOT / "test-output"
# The strictest policy the page must work under: its own files only, nothing inline, no eval.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
BUDGET = 4000

# Runs in the page before its own script: records every change of the attributes the page sets
# for tests (chart points, layer snapshot) and every content security policy violation.
RECORDER = """
window.__seen = {points: [], snapshots: [], violations: []};
document.addEventListener("securitypolicyviolation",
  (e) => window.__seen.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
new MutationObserver((records) => {
  for (const r of records) {
    if (r.target.id === "chart-loss") window.__seen.points.push(Number(r.target.dataset.points));
    if (r.target.id === "layers") window.__seen.snapshots.push(r.target.dataset.snapshot);
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-points", "data-snapshot"]});
"""
LOSS_PIXELS = """() => {
  const c = document.querySelector("#chart-loss");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 180 && d[i + 1] < 120 && d[i + 2] < 60) n++;
  return n;
}"""
LAYER_IMAGES_LOADED = """() => {
  const imgs = [...document.querySelectorAll("#layers img")];
  return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
}"""


class _Page(HTMLParser):
    """What an HTML page loads and whether anything in it is inline."""

    def __init__(self):
        super().__init__()
        self.scripts, self.styles, self.inline = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append(attrs.get("src"))
        if tag == "style":
            self.inline.append("<style>")
        if tag == "link" and attrs.get("rel") == "stylesheet":
            self.styles.append(attrs["href"])
        self.inline += [f"{tag} {name}=" for name in attrs if name == "style" or name.startswith("on")]


def test_the_page_and_its_files_are_served_documented_and_self_contained(tmp_path):
    app = create_app(Config(home=tmp_path), "redis://127.0.0.1:1/0")  # the page needs no Redis
    violations = openapi_check.install(app)
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    parsed = _Page()
    parsed.feed(page.get_data(as_text=True))
    assert parsed.scripts == ["/dashboard/app.js"] and parsed.styles == ["/dashboard/app.css"]
    assert parsed.inline == [], "inline script or style breaks a 'self'-only content security policy"
    for name, (_, mimetype) in dashboard.ASSETS.items():
        url = f"/dashboard/{name}"
        r = client.get(url)
        assert (r.status_code, r.mimetype, r.headers["Cache-Control"]) == (200, mimetype, "no-cache"), url
        text = r.get_data(as_text=True)
        assert not re.search(r"https?://|\bimport\s*\(|@import", text), f"{url} loads something from elsewhere"
        assert not re.search(r"\beval\s*\(|new\s+Function\b|\.innerHTML\b|setTimeout\(\s*['\"`]", text), url
        again = client.get(url, headers={"If-None-Match": r.headers["ETag"]})
        assert again.status_code == 304
    assert client.get("/dashboard/dashboard.js").status_code == 404  # fixed names only, never a file path
    assert client.get("/dashboard/dashboard-api.js").status_code == 404
    assert client.get("/dashboard/../openapi.yaml").status_code == 404
    assert violations == []


# A static import at the start of a line: `import { a, b } from "./name.js";` (comments may mention others).
IMPORT = re.compile(r'^import\s[^;]*?\bfrom\s+"([^"]+)";', re.MULTILINE)


def test_the_modules_import_only_each_other_and_all_are_served():
    """Every import is a served sibling; every dashboard script is served and reached from app.js."""
    static = ROOT / "service" / "static"
    served = {name: file for name, (file, mimetype) in dashboard.ASSETS.items() if mimetype == "text/javascript"}
    assert {p.name for p in static.glob("dashboard*.js")} == set(served.values()), "a script that is not served"
    reached, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        reached.add(name)
        imports = IMPORT.findall((static / served[name]).read_text("utf-8"))
        for target in imports:
            assert target.startswith("./") and target[2:] in served, f"{name} imports {target}, which is not served"
        todo += [t[2:] for t in imports if t[2:] not in reached]
    assert reached == set(served), f"served but never imported: {set(served) - reached}"


def test_a_network_trains_in_the_browser(service, tmp_path):
    """Open /, submit the default network for a few thousand examples, watch it train, classify an image."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CONVTRAIN_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    OUTPUT.mkdir(exist_ok=True)
    with gunicorn(service.env, tmp_path / "gunicorn.log", timeout=30, stop_timeout=10) as base:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                _drive(browser, base, sync_api.expect)
            finally:
                browser.close()


def test_a_search_shows_its_figure_and_leaderboard_and_a_row_opens_its_trial(service, tmp_path):
    """A finished search in the list; picked, its figure and leaderboard show, and a row opens that trial's job."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CONVTRAIN_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    from tests.e2e.test_searches import small_search

    with gunicorn(service.env, tmp_path / "gunicorn.log", timeout=30, stop_timeout=10) as base:
        created = requests.post(f"{base}/v1/searches", json=small_search(trials=2, examples=1500), timeout=10)
        assert created.status_code == 202, created.text
        search_id = created.json()["id"]
        search = wait_for(lambda: (s := requests.get(f"{base}/v1/searches/{search_id}", timeout=10).json())
                          ["status"] != "running" and s, 300, "the search ended")
        assert search["status"] == "succeeded", search
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 1000})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(f"{base}/")
                page.click(f'#search-list li[data-id="{search_id}"]')
                expect = sync_api.expect
                expect(page.locator("#search-facts")).to_contain_text("2/2 trials done", timeout=15_000)
                expect(page.locator("#search-table tbody tr")).to_have_count(2)
                page.wait_for_function("() => { const i = document.querySelector('#search-figure');"
                                       " return i.complete && i.naturalWidth > 0; }", timeout=15_000)
                best = search["best"]
                number = page.locator("td:first-child", has_text=re.compile(rf"^{best['number']}$"))
                page.locator("#search-table tbody tr").filter(has=number).click()
                expect(page.locator("#job")).to_have_attribute("data-status", "succeeded", timeout=15_000)
                assert page.evaluate("location.hash") == f"#job={best['job']}"
                assert errors == []
            finally:
                browser.close()


def _drive(browser, base: str, expect) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.add_init_script(RECORDER)

    def with_policy(route):  # serve the page under the strict policy, whatever headers the app sends
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": CSP})

    page.route(f"{base}/", with_policy)
    page.goto(f"{base}/")

    # The editor holds the first network as demo JS and shows its shape table.
    expect(page.locator("#validation .ok")).to_contain_text("5,994 parameters", timeout=15_000)
    expect(page.locator("table.shapes tbody tr")).to_have_count(9)
    page.fill("#job-name", "dashboard-e2e")
    page.fill("#budget", str(BUDGET))
    page.click("#submit")
    page.wait_for_selector('#job[data-status="succeeded"]', timeout=180_000)
    job_id = page.evaluate("location.hash").removeprefix("#job=")
    job = requests.get(f"{base}/v1/jobs/{job_id}", timeout=10).json()
    assert job["name"] == "dashboard-e2e" and job["progress"]["examples_seen"] == BUDGET

    # Loss chart: every metric point arrived, in more than one step, and the line is drawn.
    points = requests.get(f"{base}/v1/jobs/{job_id}/metrics?limit=10000", timeout=10).json()["points"]
    metric_points = sum("event" not in point for point in points)
    expect(page.locator("#chart-loss")).to_have_attribute("data-points", str(metric_points))
    seen = page.evaluate("window.__seen")
    assert len({n for n in seen["points"] if n > 0}) >= 2, f"the loss chart never updated live: {seen['points']}"
    assert page.evaluate(LOSS_PIXELS) > 100, "no loss line on the chart"

    # Layer pictures: the newest snapshot is shown, after at least one earlier one.
    snapshots = requests.get(f"{base}/v1/jobs/{job_id}/layers", timeout=10).json()["snapshots"]
    expect(page.locator("#layers")).to_have_attribute("data-snapshot", str(snapshots), timeout=15_000)
    page.wait_for_function(LAYER_IMAGES_LOADED, timeout=15_000)
    sources = page.eval_on_selector_all("#layers img", "imgs => imgs.map(i => i.getAttribute('src'))")
    assert len(sources) >= len(job["network"]["layers"]) * 2
    assert all(src.endswith(f"snapshot={snapshots}") for src in sources), sources
    shown = [s for s in dict.fromkeys(seen["snapshots"] + [str(snapshots)]) if s]
    assert len(shown) >= 2, f"the layer pictures never refreshed: {seen['snapshots']}"

    # Test predictions, and the upload box with one of the test digits.
    expect(page.locator(".prediction").first).to_be_visible(timeout=15_000)
    assert page.locator(".prediction").count() >= 10
    expect(page.locator("#predictions-note")).to_contain_text("test accuracy")
    first = requests.get(f"{base}/v1/jobs/{job_id}/predictions?limit=1", timeout=10).json()["predictions"][0]
    png = base64.b64decode(first["image"].split(",", 1)[1])
    page.set_input_files("#upload", files=[{"name": "digit.png", "mimeType": "image/png", "buffer": png}])
    expect(page.locator("#upload-result .bar-row")).to_have_count(3, timeout=30_000)

    # The live trainer form: its fields are the trainer-patch schema's, filled with the job's trainer.
    doc = requests.get(f"{base}/openapi.json", timeout=10).json()
    live = _trainer_patch(doc)["properties"]
    assert page.eval_on_selector_all("#trainer-form input", "els => els.map(e => e.name)") == list(live)
    trainer = job["request"]["trainer"]
    shown = dict(page.eval_on_selector_all("#trainer-form input", "els => els.map(e => [e.name, e.value])"))
    assert {name: float(value) for name, value in shown.items()} == {name: trainer[name] for name in live}
    for name in live:  # the job has succeeded: its trainer can no longer change
        expect(page.locator(f'#trainer-form input[name="{name}"]')).to_be_disabled()

    assert page_errors == []
    assert page.evaluate("window.__seen.violations") == []
    # Under the test's output folder only: docs/dashboard.png (the README's) comes from docs/screenshot.py.
    page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)
    page.close()
    _trainer_form_follows_the_api(browser, base, expect)


def _trainer_patch(doc: dict) -> dict:
    """The request body schema of PATCH /v1/jobs/{job_id}/trainer in an OpenAPI document, $ref followed."""
    schema = doc["paths"]["/v1/jobs/{job_id}/trainer"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    while "$ref" in schema:
        node = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _trainer_form_follows_the_api(browser, base: str, expect) -> None:
    """Serve the page a different trainer-patch schema: the form follows it; without one, it says so."""
    page = browser.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    doc = requests.get(f"{base}/openapi.json", timeout=10).json()
    patch = _trainer_patch(doc)
    patch["properties"] = {"momentum": patch["properties"]["momentum"],
                           "warmup": {"type": "integer", "minimum": 0, "maximum": 100, "title": "warm-up",
                                      "description": "a made-up option"}}
    page.route(f"{base}/openapi.json", lambda route: route.fulfill(json=doc))
    page.goto(f"{base}/")
    fields = page.locator("#trainer-form input")
    expect(fields).to_have_count(2, timeout=15_000)
    assert fields.evaluate_all("els => els.map(e => [e.name, e.step, e.min, e.max])") == [
        ["momentum", "any", "0", "1"], ["warmup", "1", "0", "100"]]
    expect(page.locator("#trainer-form label").nth(1)).to_have_text("warm-up")
    expect(page.locator("#trainer-form label").nth(1)).to_have_attribute("title", "a made-up option")

    page.unroute(f"{base}/openapi.json")
    page.route(f"{base}/openapi.json", lambda route: route.fulfill(
        status=503, content_type="application/problem+json",
        body='{"type": "about:blank", "title": "Service Unavailable", "status": 503}'))
    page.reload()
    expect(page.locator("#trainer-form .error")).to_contain_text("No trainer options: Service Unavailable")
    expect(page.locator("#trainer-form input")).to_have_count(0)
    assert page_errors == []
    page.close()


def test_the_documented_assets_are_the_served_ones():
    from service.api.dashboard import ASSETS
    from service.api.docs import spec

    parameter = spec()["paths"]["/dashboard/{asset}"]["get"]["parameters"][0]
    assert sorted(parameter["schema"]["enum"]) == sorted(ASSETS)
