"""Secrets: generated on the host once (bin/secrets.sh), or supplied by the operator
(PLATFORM_* variables or the git-ignored secrets.env) and uploaded without ever being
shown. Both end up in secrets/ under the stack root, root-only."""

import hashlib
import os
from io import BytesIO

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, operation
from pyinfra.facts.files import Sha256File

from . import converge

UPLOAD_DIR = "/var/lib/platform-upload"
SUPPLIED_SECRETS_FILE = "secrets.env"

# Generated secrets: name -> length. Alphanumeric only, so they are safe in URLs and SQL.
GENERATED_SECRETS = {
    "postgres_password": 40,
    "redis_password": 40,
    "chatwoot_db_password": 40,
    "n8n_db_password": 40,
    "directus_db_password": 40,
    "chatwoot_secret_key_base": 128,
    "n8n_encryption_key": 48,
    "directus_secret": 64,
    "directus_admin_password": 24,
    "directus_admin_token": 48,
    "pangolin_server_secret": 48,
    "chatwoot_admin_password": 24,
    "n8n_owner_password": 24,
    # Meta's webhook handshake.
    "whatsapp_verify_token": 40,
    # The static token of Directus's least-privilege user for n8n.
    "directus_n8n_token": 48,
    # The passphrase of pgBackRest's repository (pitr.py): without it, the repository cannot be read.
    "pgbackrest_cipher_pass": 64,
}
# Made on the host from a generated secret (bin/secrets.sh): name -> the secret it comes from.
DERIVED_SECRETS = {"n8n_owner_password_hash": "n8n_owner_password"}
# Secrets only the operator can supply: name -> the feature that needs it (config.features).
SUPPLIED_SECRETS = {
    "smtp_password": "smtp",
    "acme_dns_api_token": "acme_dns_provider",
    "claude_api_key": "ai_replies",
    "whatsapp_access_token": "departments",
    "meta_app_secret": "departments",
    "facebook_page_token": "facebook",
    "instagram_access_token": "instagram",
    "restic_password": "backup_offsite",
    "restic_aws_access_key_id": "backup_offsite_s3",
    "restic_aws_secret_access_key": "backup_offsite_s3",
    "pgbackrest_s3_key": "pitr_s3",
    "pgbackrest_s3_key_secret": "pitr_s3",
}

# Supplied secrets another feature uses when they are there, without needing them:
# name -> that feature. Captions are Claude's with a key, the promotion's text without.
OPTIONAL_USES = {"claude_api_key": "social_posts"}

# Environment variable -> secret, per env file (secrets/<name>.env on the host).
SECRET_ENV = {
    "postgres": {
        "POSTGRES_PASSWORD": "postgres_password",
        "PGBACKREST_REPO1_CIPHER_PASS": "pgbackrest_cipher_pass",
        "PGBACKREST_REPO1_S3_KEY": "pgbackrest_s3_key",
        "PGBACKREST_REPO1_S3_KEY_SECRET": "pgbackrest_s3_key_secret",
    },
    "redis": {"REDIS_PASSWORD": "redis_password"},
    "chatwoot": {
        "POSTGRES_PASSWORD": "chatwoot_db_password",
        "REDIS_PASSWORD": "redis_password",
        "SECRET_KEY_BASE": "chatwoot_secret_key_base",
        "SMTP_PASSWORD": "smtp_password",
        # Webhooks::WhatsappController checks X-Hub-Signature-256 with it (GHSA-7rw7-pc8v-mrr3).
        "WHATSAPP_APP_SECRET": "meta_app_secret",
        # Messenger's /bot checks X-Hub-Signature with FB_APP_SECRET (config/initializers/facebook_messenger.rb).
        "FB_APP_SECRET": "meta_app_secret",
        "FB_VERIFY_TOKEN": "whatsapp_verify_token",
        # Instagram DMs of the Page's linked account: /webhooks/instagram's handshake (signed with FB_APP_SECRET).
        "IG_VERIFY_TOKEN": "whatsapp_verify_token",
    },
    "n8n": {
        "DB_POSTGRESDB_PASSWORD": "n8n_db_password",
        "N8N_ENCRYPTION_KEY": "n8n_encryption_key",
        "QUEUE_BULL_REDIS_PASSWORD": "redis_password",
        "N8N_SMTP_PASS": "smtp_password",
        # bcrypt of n8n_owner_password, made by the secrets script (the workflows' own
        # secrets are n8n credentials, imported by the application bootstrap).
        "N8N_INSTANCE_OWNER_PASSWORD_HASH": "n8n_owner_password_hash",
    },
    "directus": {
        "DB_PASSWORD": "directus_db_password",
        "SECRET": "directus_secret",
        "ADMIN_PASSWORD": "directus_admin_password",
        # Given to the first admin by Directus's bootstrap; the healthcheck authenticates with it.
        "ADMIN_TOKEN": "directus_admin_token",
        "REDIS_PASSWORD": "redis_password",
        "EMAIL_SMTP_PASSWORD": "smtp_password",
    },
    # For the backup script's off-host copy (sourced by the shell, not by compose).
    "restic": {
        "RESTIC_PASSWORD": "restic_password",
        "AWS_ACCESS_KEY_ID": "restic_aws_access_key_id",
        "AWS_SECRET_ACCESS_KEY": "restic_aws_secret_access_key",
    },
}


def supplied_secrets(directory=".", filename=None):
    """Operator secrets from the environment (PLATFORM_SMTP_PASSWORD, ...) or from a file
    (same names, KEY=VALUE lines): group data's secrets_file, by default the git-ignored
    secrets.env beside deploy.py. The environment wins."""
    found = {}
    path = os.path.join(directory, filename or SUPPLIED_SECRETS_FILE)
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith("#"):
                    value = value.strip()
                    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                        value = value[1:-1]
                    found[key.strip()] = value
    found.update({k: v for k, v in os.environ.items() if k.startswith("PLATFORM_")})
    return {
        name: found[f"PLATFORM_{name.upper()}"] for name in SUPPLIED_SECRETS if found.get(f"PLATFORM_{name.upper()}")
    }


def env_files(cfg):
    """Env files holding secrets, one per compose service group (and restic's)."""
    return (
        "postgres",
        "redis",
        *cfg.stack.apps,
        *(["traefik"] if cfg.edge.acme_dns_provider else []),
        *(["restic"] if cfg.backup.backup_offsite else []),
    )


def secret_env(cfg):
    """SECRET_ENV for this deploy: the env files it needs, with only the secrets it has."""
    available = set(GENERATED_SECRETS) | set(DERIVED_SECRETS) | set(cfg.supplied_secrets)
    mapping = {**SECRET_ENV, "traefik": {cfg.edge.acme_dns_token_env: "acme_dns_api_token"}}
    return {
        name: {var: secret for var, secret in mapping[name].items() if secret in available} for name in env_files(cfg)
    }


@operation()
def secret_file(secret_name: str, dest: str, cfg=None):
    """files.put for an operator-supplied secret: the same compare-and-upload, but the value
    is never shown, not even by --diff, and is not an argument of the operation."""
    data = cfg.supplied_secrets[secret_name].encode()
    if host.get_fact(Sha256File, path=dest) == hashlib.sha256(data).hexdigest():
        host.noop(f"{secret_name} is up to date")
        return
    # With sudo, the upload lands first where the SSH user can write: a directory only
    # that user can read (made by the stack layer), never a world-readable /tmp file.
    temp = f"{UPLOAD_DIR}/{secret_name}"
    yield FileUploadCommand(BytesIO(data), dest, remote_temp_filename=temp)
    yield f"rm -f {temp}; chown root:root {dest} && chmod 600 {dest}"


class SecretDigests(FactBase):
    """name -> sha256 of each named file in a secrets directory (missing files left out)."""

    def command(self, directory, names):
        return f"cd {directory} 2>/dev/null && sha256sum {' '.join(names)} 2>/dev/null; true"

    @staticmethod
    def default():
        return {}

    def process(self, output):
        return {name: digest for digest, name in (line.split() for line in output if len(line.split()) == 2)}


def operator_secret_files(cfg, directory):
    """The operator's secrets stored in `directory`, each only when it differs (one read for all)."""
    supplied = cfg.supplied_secrets
    stored = converge.fact(SecretDigests, directory=directory, names=sorted(supplied)) if supplied else {}
    differ = [n for n in sorted(supplied) if stored.get(n) != hashlib.sha256(supplied[n].encode()).hexdigest()]
    if differ:
        # Only when one is to be uploaded: the directory belongs to whoever logs in, and a
        # rerun as another user (root, then a sudo user) must not change it for nothing.
        converge.directory(
            name="Private upload directory", path=UPLOAD_DIR, user=host.data.get("ssh_user") or "root", mode="700"
        )
    return [
        secret_file(name=f"Operator secret {name} stored", secret_name=name, dest=f"{directory}/{name}", cfg=cfg)
        for name in differ
    ]


def reads(cfg):
    """The facts read here on the primary, for converge.read_ahead."""
    supplied = sorted(cfg.supplied_secrets)
    return [(SecretDigests, {"directory": f"{cfg.stack.stack_root}/secrets", "names": supplied})] if supplied else []
