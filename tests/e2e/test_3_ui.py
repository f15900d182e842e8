"""The apps' own web UIs in a real headless Chromium (tools/browser.py), over HTTPS through
the host's edge (the real Traefik), its certificate verified against the host's ACME root:
the Directus admin and the n8n editor let the admin in and show what the deploy made.
Screenshots go to .sandbox/screenshots/, on success and on failure."""

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tools.browser import chrome

from conftest import GROUP_DATA, NAME, PORT, ROOT
from inbound_helpers import host_secret

COLLECTIONS = ("promotions", "social_post_logs")
WORKFLOWS = tuple(sorted(p.stem for p in (ROOT / "files" / "n8n").glob("*.json")))
ACME_ROOT = ROOT / ".sandbox" / f"{NAME}.acme-root.pem"
SHOTS = ROOT / ".sandbox" / "screenshots"
HOSTNAMES = {"n8n": "n8n", "directus": "cms", **GROUP_DATA.get("edge_hostnames", {})}  # the edge's defaults
TIMEOUT = 60


def url(app, path):
    return f"https://{HOSTNAMES[app]}.{GROUP_DATA['domain']}{path}"


@pytest.fixture
def browser(sandbox):
    with chrome(ACME_ROOT, GROUP_DATA["_sandbox_addresses"](PORT)[0]) as driver:
        driver.set_page_load_timeout(TIMEOUT)
        yield driver


def shot(driver, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait(driver, name, what, condition):
    """Wait for `condition`; on a time-out fail with a screenshot and what the page shows."""
    try:
        return WebDriverWait(driver, TIMEOUT, ignored_exceptions=[StaleElementReferenceException]).until(condition)
    except WebDriverException as e:
        error = type(e).__name__
    path = shot(driver, f"{name}-failed")
    text = "\n".join(line for line in driver.find_element(By.TAG_NAME, "body").text.splitlines() if line.strip())[:1500]
    pytest.fail(
        f"{what}: not within {TIMEOUT} s at {driver.current_url} ({error}; screenshot {path}); the page shows:\n{text}"
    )


def sign_in_form(driver, name, path, css):
    """Open the sign-in page and return its first field. A single-page app whose first load
    comes back blank (no element rendered; seen under load) is loaded once more, and the
    blank load is reported, never silently retried."""
    driver.get(url(name, path))
    try:
        return WebDriverWait(driver, TIMEOUT // 2).until(lambda d: visible(d, css))[0]
    except WebDriverException:
        if not driver.find_element(By.TAG_NAME, "body").text.strip():
            print(f"\n{name}: the page at {driver.current_url} was blank after {TIMEOUT // 2} s; loading it again")
            driver.get(url(name, path))
    return wait(driver, name, f"{name}'s sign-in form", lambda d: visible(d, css))[0]


def visible(driver, css):
    return [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]


def test_directus_admin_logs_in_and_lists_the_collections(sandbox, browser, capsys):
    email = sign_in_form(browser, "directus", "/admin/login", "input[type=email]")
    email.send_keys(GROUP_DATA["admin_email"])
    browser.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(
        host_secret(sandbox, "directus_admin_password")
    )
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(
        browser,
        "directus",
        f"Directus's navigation listing {COLLECTIONS} after signing in",
        lambda d: all(visible(d, f'.content-navigation a[href$="/admin/content/{c}"]') for c in COLLECTIONS),
    )
    path = shot(browser, "directus")
    with capsys.disabled():  # shown even when the test passes
        print(f"\nscreenshot of the Directus admin: {path}")


def test_n8n_owner_logs_in_and_sees_the_workflows(sandbox, browser, capsys):
    email = sign_in_form(browser, "n8n", "/signin", "input[name=emailOrLdapLoginId]")
    email.send_keys(GROUP_DATA.get("n8n_owner_email") or GROUP_DATA["admin_email"])
    browser.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(host_secret(sandbox, "n8n_owner_password"))
    browser.find_element(By.CSS_SELECTOR, "[data-test-id=form-submit-button]").click()
    wait(browser, "n8n", "n8n signing the owner in", lambda d: "/signin" not in d.current_url)
    browser.get(url("n8n", "/home/workflows"))
    wait(
        browser,
        "n8n",
        f"n8n's workflow list showing {WORKFLOWS}",
        lambda d: set(WORKFLOWS) <= {e.text for e in visible(d, "[data-test-id=workflow-card-name]")},
    )
    path = shot(browser, "n8n")
    with capsys.disabled():
        print(f"\nscreenshot of the n8n editor: {path}")
