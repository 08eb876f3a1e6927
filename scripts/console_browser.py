#!/usr/bin/env python3
"""Drives the real `packer serve` in headless Chromium (Debian's chromium + chromedriver, through
Selenium): the flows an operator clicks through, each page kept as a screenshot.

Usage: console_browser.py URL TOKEN_FILE OUTPUT_DIR SCREENSHOT_DIR   (scripts/test-console.sh)
"""
import hashlib
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

url, token_file, out_dir, shots = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4]
downloads = os.path.join(shots, "downloads")
os.makedirs(downloads, exist_ok=True)
for f in os.listdir(downloads):
    os.remove(os.path.join(downloads, f))

opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,1100"]:
    opts.add_argument(a)
opts.add_experimental_option("prefs", {"download.default_directory": downloads, "download.prompt_for_download": False})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
# A condition may read the page while a click's navigation replaces it: the element it found is
# then stale (CI saw exactly this after the delete click). Such a read is retried, not a failure.
wait = WebDriverWait(driver, 120, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
step = 0


def shot(name):
    global step
    step += 1
    path = os.path.join(shots, f"{step:02d}-{name}.png")
    driver.save_screenshot(path)
    print(f"  screenshot {path}")


def ok(cond, what):
    if not cond:
        shot("FAILED")
        raise SystemExit(f"FAIL: {what}\n--- page ---\n{driver.find_element(By.TAG_NAME, 'body').text[:3000]}")
    print(f"ok: {what}")


def body():
    return driver.find_element(By.TAG_NAME, "body").text


def click(text):
    driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']").click()


def wait_job():
    wait.until(lambda d: d.find_element(By.ID, "job").get_attribute("data-running") == "false"
               and d.find_element(By.ID, "job-state").text.endswith(("ok", "FAILED")))
    return driver.find_element(By.ID, "job-state").text


try:
    token = open(token_file).read().strip()

    # A wrong password is refused.
    driver.get(url + "/login")
    shot("login")
    driver.find_element(By.ID, "password").send_keys("not the token")
    driver.find_element(By.ID, "login").click()
    wait.until(lambda d: "Wrong password or token." in body())
    ok("Wrong password or token." in body() and driver.current_url.endswith("/login"), "a wrong password is refused")
    shot("login-refused")

    # The token logs in; the session cookie is HttpOnly (no script sees it).
    driver.find_element(By.ID, "password").send_keys(token)
    driver.find_element(By.ID, "login").click()
    wait.until(lambda d: d.find_elements(By.ID, "health"))
    ok(driver.execute_script("return document.cookie").find("packer_session") < 0, "logged in; the session cookie is HttpOnly")
    ok(token not in driver.page_source, "the token is not rendered")
    shot("dashboard")

    # A form without its CSRF token is refused.
    driver.get(url + "/bundles")
    before = len(driver.find_elements(By.CSS_SELECTOR, "#bundles tbody tr"))
    driver.execute_script("""
        const f = document.querySelector("form[action$='/protect']");
        f.querySelector("input[name=csrf]").remove();
        f.submit();""")
    wait.until(lambda d: "CSRF" in body())
    ok("no valid CSRF token" in body(), "an action without its CSRF token is refused")
    shot("csrf-refused")
    driver.get(url + "/api/bundles")
    ok('"protected":true' not in driver.find_element(By.TAG_NAME, "body").text, "and changed nothing")

    # Back up now, watch its progress, see the bundle appear.
    driver.get(url + "/")
    click("Back up now")
    wait.until(lambda d: d.current_url.endswith("/job"))
    shot("job-running")
    state = wait_job()
    ok(state == "backup finished: ok", f"back up now finished ({state}: {driver.find_element(By.ID, 'job-outcome').text})")
    shot("job-done")
    bundle_href = driver.find_element(By.ID, "job-bundle").get_attribute("href")
    new_id = bundle_href.rsplit("/", 1)[1]
    driver.get(url + "/bundles")
    rows = driver.find_elements(By.CSS_SELECTOR, "#bundles tbody tr")
    ok(len(rows) == before + 1 and rows[0].get_attribute("data-id") == new_id, f"bundle {new_id} appears first in the list")
    shot("bundles")

    # Open it and search a workflow.
    driver.get(bundle_href)
    file_name = driver.find_element(By.CSS_SELECTOR, "#summary code").text
    for secret in ["xoxb-fixture", "not-a-real-password", "fixture-key-0123456789abcdef"]:
        ok(secret not in driver.page_source, f"no secret ({secret[:8]}...) on the bundle page")
    shot("bundle")
    driver.find_element(By.ID, "search").send_keys("webhook")
    driver.find_element(By.ID, "search-button").click()
    wait.until(lambda d: "search=webhook" in d.current_url)
    names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#workflows .wf-name")]
    ok(names == ["Webhook → Slack"], f"the search finds the workflow ({names})")
    driver.find_element(By.ID, "n8n").location_once_scrolled_into_view
    shot("bundle-search")

    # Verify it.
    driver.get(bundle_href)
    click("Verify digests")
    wait.until(lambda d: d.current_url.endswith("/job"))
    state = wait_job()
    ok(state == "verify finished: ok", f"verify finished ({driver.find_element(By.ID, 'job-outcome').text})")
    shot("verify-done")
    driver.get(bundle_href)
    ok(driver.find_element(By.ID, "verified").text.startswith("ok digest"), "the bundle page shows it verified")

    # Protect it.
    click("Protect")
    wait.until(lambda d: d.find_element(By.ID, "protected").text == "yes")
    ok("protected " + file_name in body(), "protected, and the page says so")
    shot("protected")

    # The retention preview keeps it, because it is protected.
    driver.get(url + "/retention?at=2030-01-01T00:00:00Z")
    row = driver.find_element(By.CSS_SELECTOR, f"#preview tr[data-id='{new_id}']")
    ok(row.find_element(By.CSS_SELECTOR, ".action").text == "keep" and "protected" in row.text,
       f"the retention preview keeps it ({row.text})")
    shot("retention")

    # Delete is refused: the button waits for the typed name, and then the server refuses.
    driver.get(bundle_href)
    delete = driver.find_element(By.XPATH, "//button[normalize-space()='Delete']")
    ok(not delete.is_enabled(), "delete is disabled until the file name is typed")
    driver.find_element(By.ID, "confirm").send_keys(file_name)
    ok(delete.is_enabled(), "typing the file name enables it")
    delete.click()
    wait.until(lambda d: "is protected" in body())
    ok("unprotect it first" in body(), "deleting a protected bundle is refused")
    ok(os.path.isfile(os.path.join(out_dir, file_name)), "the file is still there")
    shot("delete-refused")

    # Download it and check its sha256 against the page and the sidecar.
    driver.get(bundle_href)
    shown = driver.find_element(By.ID, "sha256").text
    driver.find_element(By.ID, "download").click()
    target = os.path.join(downloads, file_name)
    deadline = time.time() + 60
    while not (os.path.isfile(target) and not os.path.exists(target + ".crdownload")):
        if time.time() > deadline:
            ok(False, f"the download arrived ({os.listdir(downloads)})")
        time.sleep(0.2)
    time.sleep(0.3)
    digest = hashlib.sha256(open(target, "rb").read()).hexdigest()
    sidecar = open(os.path.join(out_dir, file_name + ".sha256")).read().split()[0]
    ok(digest == shown == sidecar, f"the download's sha256 {digest} matches the page and the sidecar")
    shot("downloaded")
    print("browser test: all passed")
finally:
    driver.quit()
