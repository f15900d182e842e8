"""The vendors' simulator beside each host (sandbox/simulators/vendors.py) and its made-up credentials."""

import subprocess
import sys

from .common import GROUP_DATA, NETWORK, ROOT, STATE, VENDORS_IMAGE, container_state, image_exists, log, run
from .pki import issue_cert

VENDOR_SECRETS = (
    "PLATFORM_META_APP_SECRET",
    "PLATFORM_WHATSAPP_ACCESS_TOKEN",
    "PLATFORM_CLAUDE_API_KEY",
    "PLATFORM_FACEBOOK_PAGE_TOKEN",
    "PLATFORM_INSTAGRAM_ACCESS_TOKEN",
    "PLATFORM_SMTP_PASSWORD",
    "PLATFORM_PGBACKREST_S3_KEY",
    "PLATFORM_PGBACKREST_S3_KEY_SECRET",
)
# The bucket the S3 stand-in holds from the start (group_data/sandbox_cluster.py's pitr_repo_s3_bucket).
S3_BUCKET = "msgplatform-pitr"


def vendor_secrets():
    """The simulated vendors' credentials, each made once (names added later are appended to the
    file, the others kept): what an operator would get from Meta, Anthropic and a mail provider."""
    import secrets

    path = STATE / "vendors.env"
    STATE.mkdir(exist_ok=True)
    path.touch(mode=0o600)
    known = dict(line.split("=", 1) for line in path.read_text().split())
    missing = [name for name in VENDOR_SECRETS if name not in known]
    if missing:
        with open(path, "a") as f:
            f.write("".join(f"{name}=sim-{secrets.token_hex(16)}\n" for name in missing))
        path.chmod(0o600)
    return dict(line.split("=", 1) for line in path.read_text().split())


def ensure_vendors(name, port):
    """The vendors' simulator beside the host (sandbox/simulators/vendors.py), at its fixed address,
    its SMTP sink's aiosmtpd from PyPI in .sandbox/sim-lib. A container started with other
    arguments (another checkout, new secrets, an older recipe) is started again with these."""
    import hashlib

    vendors, address = f"{name}-vendors", GROUP_DATA["_sandbox_addresses"](port)[2]
    lib, requirement = STATE / "sim-lib", "aiosmtpd==1.4.6"
    if not (lib / f"{requirement.replace('==', '-')}.dist-info").exists():
        log(f"installing {requirement} for the vendors' simulator into {lib}")
        pip = ROOT / ".venv" / "bin" / "pip"
        run(
            [
                *([str(pip)] if pip.exists() else [sys.executable, "-m", "pip"]),
                "install",
                "-q",
                "--target",
                str(lib),
                requirement,
            ],
            stdout=subprocess.DEVNULL,
        )
    # The S3 stand-in's certificate names the address as a DNS name too: pgBackRest 2.45 matches
    # only DNS names (src/common/io/tls/client.c, tlsClientHostVerify).
    certs = STATE / f"s3-{address}"
    if not (certs / "s3.pem").exists():
        issue_cert(certs, "s3", [address], [address])
    if not image_exists(VENDORS_IMAGE):
        from .images import ensure_vendors_image

        ensure_vendors_image()
    secret = vendor_secrets()
    env = {
        "SIM_WHATSAPP_TOKEN": secret["PLATFORM_WHATSAPP_ACCESS_TOKEN"],
        "SIM_META_APP_SECRET": secret["PLATFORM_META_APP_SECRET"],
        "SIM_FACEBOOK_PAGE_TOKEN": secret["PLATFORM_FACEBOOK_PAGE_TOKEN"],
        "SIM_INSTAGRAM_TOKEN": secret["PLATFORM_INSTAGRAM_ACCESS_TOKEN"],
        "SIM_INSTAGRAM_BUSINESS_ACCOUNT": GROUP_DATA["instagram_user_id"],
        "SIM_SMTP_USER": "platform",
        "SIM_SMTP_PASSWORD": secret["PLATFORM_SMTP_PASSWORD"],
        "PYTHONPATH": "/sim-lib",
        "SIM_S3_CERT": "/sim-s3/s3.pem",
        "SIM_S3_KEY": "/sim-s3/s3.key",
        "SIM_S3_BUCKETS": S3_BUCKET,
    }
    args = [
        "--network",
        NETWORK,
        "--ip",
        address,
        *[arg for k, v in env.items() for arg in ("-e", f"{k}={v}")],
        "-v",
        f"{ROOT / 'sandbox' / 'simulators'}:/sim:ro",
        "-v",
        f"{lib}:/sim-lib:ro",
        "-v",
        f"{certs}:/sim-s3:ro",
        "--entrypoint",
        "python3",
        VENDORS_IMAGE,
        "/sim/vendors.py",
    ]
    digest = hashlib.sha256("\0".join(args).encode()).hexdigest()[:16]
    label = run(
        ["docker", "inspect", "-f", '{{index .Config.Labels "platform.vendors-args"}}', vendors],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if container_state(vendors) is not None and label != digest:
        log(f"starting {vendors} again: its arguments changed")
        run(["docker", "rm", "-f", vendors], stdout=subprocess.DEVNULL)
    if container_state(vendors) is None:
        run(
            ["docker", "run", "-d", "--name", vendors, "--label", f"platform.vendors-args={digest}", *args],
            stdout=subprocess.DEVNULL,
        )
    elif not container_state(vendors):
        run(["docker", "start", vendors], stdout=subprocess.DEVNULL)
