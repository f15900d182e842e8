"""A real headless Chromium for the UI tests: Debian's chromium and chromedriver, driven
by selenium. It trusts one given root certificate (a throwaway NSS database under a
temporary HOME, for this browser only) and resolves every name to one address (the
sandbox host's edge), so https://<app>.<domain> is verified for real.

    python3 tools/browser.py install    # apt-get install chromium chromium-driver libnss3-tools, if missing
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile

PACKAGES = {"chromium": "chromium", "chromedriver": "chromium-driver", "certutil": "libnss3-tools"}


def privileged(cmd):
    return cmd if os.geteuid() == 0 else ["sudo", *cmd]


def install():
    missing = [package for command, package in PACKAGES.items() if not shutil.which(command)]
    if missing:
        subprocess.run(privileged(["apt-get", "update", "-qq"]), check=True)
        subprocess.run(
            privileged(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", *missing]),
            check=True,
        )


@contextlib.contextmanager
def chrome(root_pem, address):
    """A headless Chrome webdriver trusting `root_pem`, with every host name mapped to `address`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    home = tempfile.mkdtemp(prefix="browser-")
    try:
        nssdb = f"sql:{home}/.pki/nssdb"
        os.makedirs(f"{home}/.pki/nssdb")
        subprocess.run(["certutil", "-d", nssdb, "-N", "--empty-password"], check=True)
        subprocess.run(
            ["certutil", "-d", nssdb, "-A", "-t", "C,,", "-n", "sandbox-acme", "-i", str(root_pem)], check=True
        )
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--window-size=1400,900",
            f"--user-data-dir={home}/profile",
            f"--host-resolver-rules=MAP * {address}",
        ):
            options.add_argument(flag)
        # Chromium reads $HOME/.pki/nssdb: it inherits HOME from chromedriver.
        service = Service(shutil.which("chromedriver"), env={**os.environ, "HOME": home})
        driver = webdriver.Chrome(options=options, service=service)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit(__doc__)
    install()
