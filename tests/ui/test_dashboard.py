"""The admin UI in a real headless Chromium (Debian's package, driven by Playwright).

Run by tests/admin.rs (`the_dashboard_works_in_a_real_chromium`) against a gateway process
with a LiteLLM provider in front of the real LiteLLM proxy; it has already sent requests
through it (GATEWAY_REQUESTS of them, LITELLM_REQUESTS through LiteLLM). Screenshots of
every page, at 1280x800 and at phone width, go to SCREENSHOTS.
"""
import json
import os
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

GATEWAY = os.environ["GATEWAY_URL"]
MASTER = os.environ["MASTER_KEY"]
LITELLM_URL = os.environ["LITELLM_URL"]
LITELLM_KEY = os.environ["LITELLM_KEY"]
CHROMIUM = os.environ["CHROMIUM"]
SHOTS = Path(os.environ["SCREENSHOTS"])
REQUESTS = int(os.environ["GATEWAY_REQUESTS"])
PAGES = ["overview", "providers", "routing", "keys", "requests"]


def chat(model):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hello from the browser test"}]})
    req = urllib.request.Request(
        f"{GATEWAY}/v1/chat/completions",
        data=body.encode(),
        headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as response:
        assert response.status == 200
        return json.load(response)


@pytest.fixture()
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


class Console:
    """What the page logged: errors and warnings are problems, except the failed
    responses a step provokes on purpose (Chromium logs every 4xx fetch)."""

    def __init__(self, page):
        self.problems = []
        self.expected = 0
        self.provoked = 0
        page.on("console", self.message)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def message(self, m):
        if m.type not in ("error", "warning"):
            return
        if self.expected and "Failed to load resource" in m.text:
            self.expected -= 1
            self.provoked += 1
        else:
            self.problems.append(f"console.{m.type}: {m.text}")

    def expect_failed_response(self):
        self.expected += 1


def open_page(browser, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    console = Console(page)
    page.on("dialog", lambda d: d.accept())
    return page, console


def sign_in(page, console):
    page.goto(f"{GATEWAY}/ui/")
    console.expect_failed_response()
    page.fill("#master-key", "sk-wrong")
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#sign-in-error")).to_contain_text("not the master key")
    page.fill("#master-key", MASTER)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#nav")).to_be_visible()


def go(page, name):
    page.click(f"#nav a[data-page={name}]")
    expect(page.locator(f"#nav a.active[data-page={name}]")).to_be_visible()
    expect(page.locator("#page h2")).to_be_visible()


def tile(page, label):
    return page.locator(f'[data-tile="{label}"] .value')


def provider_row(page, name):
    return page.locator(f'#page [data-breakdown="By provider"] tr:has(td:text-is("{name}"))')


def test_sign_in_see_usage_add_a_litellm_connection_and_see_it_counted(browser):
    page, console = open_page(browser, 1280, 800)
    sign_in(page, console)

    # The overview: the figures of the requests just made, LiteLLM's among them.
    expect(tile(page, "requests")).to_have_text(str(REQUESTS))
    assert page.locator("[data-chart] svg").count() == 7
    assert page.locator('[data-chart="Requests"] circle').count() >= 1
    expect(provider_row(page, "litellm")).to_be_visible()
    expect(provider_row(page, "mock")).to_be_visible()
    expect(page.locator('[data-breakdown="By provider and upstream model"] td:text-is("litellm/mock-gpt")')).to_be_visible()
    page.click("text=Last hour")
    expect(tile(page, "requests")).to_have_text(str(REQUESTS))
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

    # Providers: health of the configured ones; a LiteLLM connection added through the form.
    go(page, "providers")
    expect(page.locator('#providers-table tr[data-provider="litellm"]')).to_contain_text("litellm")
    form = page.locator("#provider-form")
    form.locator("select[name=kind]").select_option("litellm")
    expect(form).to_contain_text("LiteLLM proxy URL")
    form.locator("input[name=name]").fill("litellm2")
    form.locator("input[name=api_base]").fill(LITELLM_URL)
    form.locator("input[name=api_key]").fill("sk-not-the-key")
    form.locator("input[name=models]").fill("mock-gpt")
    form.locator("text=Test connection").click()
    expect(form.locator("[data-test-result]")).to_contain_text("Failed")
    form.locator("input[name=api_key]").fill(LITELLM_KEY)
    form.locator("text=Test connection").click()
    expect(form.locator("[data-test-result]")).to_contain_text("Connected")
    expect(form.locator("[data-test-result]")).to_contain_text("mock-gpt")
    page.screenshot(path=str(SHOTS / "providers-add.png"), full_page=True)
    form.locator("button[type=submit]").click()
    expect(page.locator('#providers-table tr[data-provider="litellm2"]')).to_contain_text("admin API")
    page.screenshot(path=str(SHOTS / "providers.png"), full_page=True)
    assert LITELLM_KEY not in page.content()

    # A request to a model through it, counted on the dashboard.
    answer = chat("litellm2/mock-gpt")
    assert answer["choices"][0]["message"]["content"]
    go(page, "overview")
    expect(tile(page, "requests")).to_have_text(str(REQUESTS + 1))
    expect(provider_row(page, "litellm2").locator("td").nth(1)).to_have_text("1")
    page.screenshot(path=str(SHOTS / "overview-after.png"), full_page=True)

    # Routing: an alias to the new connection.
    go(page, "routing")
    alias_form = page.locator("form:has(h3:text-is('Add alias'))")
    alias_form.locator("input[name=name]").fill("via-litellm")
    alias_form.locator("input[name=target]").fill("litellm2/mock-gpt")
    alias_form.locator("button[type=submit]").click()
    expect(page.locator('#aliases-table tr[data-alias="via-litellm"]')).to_contain_text("litellm2/mock-gpt")
    bad = page.locator("form:has(h3:text-is('Add alias'))")
    bad.locator("input[name=name]").fill("broken")
    bad.locator("input[name=target]").fill("nowhere/model")
    console.expect_failed_response()
    bad.locator("button[type=submit]").click()
    expect(bad.locator(".error")).to_contain_text("aliases.broken")
    page.screenshot(path=str(SHOTS / "routing.png"), full_page=True)
    chat("via-litellm")

    # Keys: one created (its secret shown once), blocked.
    go(page, "keys")
    key_form = page.locator("form:has(h3:text-is('Create key'))")
    key_form.locator("input[name=key_alias]").fill("browser-app")
    key_form.locator("input[name=max_budget]").fill("5")
    key_form.locator("button[type=submit]").click()
    expect(page.locator("[data-new-key]")).to_contain_text("sk-")
    row = page.locator('#keys-table tr[data-key="browser-app"]')
    expect(row).to_contain_text("$0 of $5.00")
    row.locator("text=Block").click()
    expect(page.locator('#keys-table tr[data-key="browser-app"]')).to_contain_text("blocked")
    page.screenshot(path=str(SHOTS / "keys.png"), full_page=True)

    # Requests: the latest records, filtered, one opened.
    go(page, "requests")
    expect(page.locator("#requests-table tbody tr").first).to_be_visible()
    page.fill("#filters input[name=provider]", "litellm2")
    page.click("#filters button[type=submit]")
    expect(page.locator("#requests-table tbody tr")).to_have_count(2)
    page.locator("#requests-table tbody tr").first.click()
    expect(page.locator("#request-details")).to_contain_text("litellm2")
    page.screenshot(path=str(SHOTS / "requests.png"), full_page=True)

    assert console.problems == [], console.problems
    assert console.provoked == 2, "the wrong key's 401 and the bad alias's 400 were logged"



def test_every_page_fits_a_phone(browser):
    page, console = open_page(browser, 390, 844)
    sign_in(page, console)
    for name in PAGES:
        go(page, name)
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} is {overflow}px wider than the phone"
        page.screenshot(path=str(SHOTS / f"phone-{name}.png"), full_page=True)
    page.click("#sign-out")
    expect(page.locator("#sign-in")).to_be_visible()
    assert console.problems == [], console.problems
