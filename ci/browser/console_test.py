"""The web console in a real browser (Chromium through ChromeDriver, with Selenium).

A person with only a browser: signs in as the seeded user, adds a personal integration, creates
a token; an MCP server (plain HTTP here) leases with that token; the person sees the lease on
the dashboard, revokes it there, looks at every page at phone width and signs out. Every page is
checked for labelled fields and a first Tab that reaches "Skip to content", and photographed.
"""

import argparse
import json
import os
import sys
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

EMAIL = "test@mcp-manager.local"
PASSWORD = "password"
CREDENTIAL = "browser-secret-value-7d1f"


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--disable-gpu"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"),
                            options=options)


class Walk:
    def __init__(self, base, shots):
        self.base = base
        self.shots = shots
        self.driver = browser()
        # Elements of the next page are waited for, not looked up while it loads.
        self.driver.implicitly_wait(5)
        self.wait = WebDriverWait(self.driver, 10)
        self.secrets = [CREDENTIAL]

    def open(self, path):
        self.driver.get(self.base + path)

    def shoot(self, name):
        path = os.path.join(self.shots, name + ".png")
        self.driver.save_screenshot(path)
        print(f"  screenshot {path}")

    def text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def expect(self, condition, what):
        if not condition:
            self.shoot("failure")
            raise AssertionError(what)

    def check_page(self, name):
        """Every visible field has a label; the first Tab reaches the skip link; a screenshot."""
        unlabelled = self.driver.execute_script("""
            return [...document.querySelectorAll('input, select, textarea')]
              .filter(f => f.type !== 'hidden')
              .filter(f => !(f.id && document.querySelector(`label[for="${f.id}"]`))
                           && !f.getAttribute('aria-label'))
              .map(f => f.name);
        """)
        self.expect(not unlabelled, f"{name}: fields without a label: {unlabelled}")
        body = self.driver.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        focused = self.driver.switch_to.active_element
        if name != "sign-in":
            self.expect(focused.text == "Skip to content",
                        f"{name}: the first Tab reaches {focused.text!r}, not the skip link")
        self.shoot(name)

    def api(self, method, path, token, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json",
            "Accept": "application/json"})
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)

    def run(self):
        driver = self.driver
        print("sign in")
        self.open("/")
        self.wait.until(seen.url_contains("/sign-in"))
        self.check_page("sign-in")
        driver.find_element(By.ID, "email").send_keys(EMAIL)
        driver.find_element(By.ID, "password").send_keys("not the password")
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait.until(seen.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".problem"), "These credentials do not match our records."))
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait.until(seen.presence_of_element_located((By.ID, "services")))
        cookie = driver.get_cookie("mcp_session")
        self.expect(cookie and cookie["httpOnly"], "the session cookie is HttpOnly")
        self.secrets.append(cookie["value"])
        self.check_page("dashboard")

        print("add a personal integration")
        driver.find_element(By.LINK_TEXT, "Integrations").click()
        add = driver.find_element(By.CSS_SELECTOR, "details.add")
        add.find_element(By.TAG_NAME, "summary").click()
        driver.find_element(By.ID, "add-integration-service").send_keys("github")
        secret = driver.find_element(By.ID, "add-integration-secret-1")
        self.expect(secret.get_attribute("type") == "password", "secrets go in password fields")
        secret.send_keys(CREDENTIAL)
        driver.find_element(By.CSS_SELECTOR, "#add-integration button[type=submit]").click()
        self.wait.until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"),
                                                           "Integration added."))
        self.expect("github" in self.text(), "the new integration is listed")
        self.expect(CREDENTIAL not in driver.page_source, "the secret is never shown again")
        self.check_page("integrations")

        print("create a token")
        driver.find_element(By.LINK_TEXT, "Tokens").click()
        driver.find_element(By.ID, "token-name").send_keys("browser-test")
        driver.find_element(By.CSS_SELECTOR, "#create-token button[type=submit]").click()
        field = self.wait.until(seen.presence_of_element_located((By.ID, "new-token")))
        token = field.get_attribute("value")
        self.secrets.append(token)
        self.check_page("tokens-created")
        driver.find_element(By.CSS_SELECTOR, "[data-copy=new-token]").click()
        self.wait.until(seen.text_to_be_present_in_element(
            (By.CSS_SELECTOR, "[data-copy=new-token]"), "Copied"))
        self.open("/tokens")
        self.expect(token not in driver.page_source, "the token is shown once")

        print("an MCP server leases with the token")
        status, lease = self.api("POST", "/api/mcp/credentials/lease", token,
                                 {"services": ["github"], "server_id": "browser-walk"})
        self.expect(status == 201, f"lease: {status} {lease}")
        lease_id = lease["lease_id"]

        print("see the lease on the dashboard and revoke it there")
        driver.find_element(By.LINK_TEXT, "Dashboard").click()
        row = self.wait.until(seen.presence_of_element_located(
            (By.XPATH, f"//tr[.//code[text()='{lease_id}']]")))
        self.expect("browser-walk" in row.text, "the lease's server is shown")
        self.shoot("dashboard-with-lease")
        row.find_element(By.CSS_SELECTOR, "button.danger").click()
        self.wait.until(seen.alert_is_present()).accept()
        self.wait.until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"),
                                                           "Lease revoked."))
        still = driver.find_elements(By.XPATH, f"//table//code[text()='{lease_id}']")
        self.expect(not still, "the revoked lease left the active list")
        self.expect("lease_revoked" in self.text(), "the revocation is in the recent activity")
        _, shown = self.api("GET", f"/api/mcp/credentials/lease/{lease_id}", token)
        self.expect(shown["status"] == "revoked", f"the lease is revoked: {shown}")

        print("the other pages")
        self.open("/leases?status=revoked")
        self.expect(lease_id in driver.page_source, "the revoked lease is listed")
        self.check_page("leases")
        self.open("/organizations")
        self.check_page("organizations")
        driver.find_element(By.CSS_SELECTOR, ".cards a").click()
        self.wait.until(seen.presence_of_element_located((By.TAG_NAME, "table")))
        self.check_page("members")

        print("at phone width")
        driver.set_window_size(390, 844)
        for path, name in (("/", "phone-dashboard"), ("/integrations", "phone-integrations"),
                           ("/tokens", "phone-tokens"), ("/leases", "phone-leases")):
            self.open(path)
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            self.expect(overflow <= 0, f"{path} scrolls sideways at phone width ({overflow}px)")
            self.shoot(name)
        driver.set_window_size(1280, 900)

        print("sign out")
        self.open("/")
        driver.find_element(By.CSS_SELECTOR, "form.sign-out button").click()
        self.wait.until(seen.url_contains("/sign-in"))
        self.open("/")
        self.expect("/sign-in" in driver.current_url, "signed out for good")

    def close(self):
        self.driver.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--secrets", required=True,
                        help="where to write the secrets the walk saw, one per line")
    args = parser.parse_args()
    walk = Walk(args.base, args.screenshots)
    try:
        walk.run()
    finally:
        with open(args.secrets, "w") as out:
            out.write("\n".join(walk.secrets) + "\n")
        walk.close()
    print("the console walk passed")


if __name__ == "__main__":
    sys.exit(main())
