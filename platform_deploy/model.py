"""Building blocks of the settings models that each layer declares next to its code.

A layer's `Settings` is a pydantic model over the flat group data: its fields are group
data keys, with their one default, their meaning (`doc`) and the fix an operator needs
when a value is refused. pydantic does the checking (strict: "22" is not a port, "yes"
is not a boolean); `config.load` turns its errors into the project's messages.
"""

import ipaddress
import os
import re
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError
from pyinfra.api.exceptions import PyinfraError


class ConfigError(PyinfraError):
    """Bad group data. The message lists every problem found, each with its fix."""


NOT_SHOWN = object()


def problem_line(key, value, problem, fix):
    """One problem, as every refusal lists it: the key (and its value, unless NOT_SHOWN),
    what is wrong, and the fix."""
    where = key if value is NOT_SHOWN else f"{key} = {value!r}"
    return f"- {where}: {problem}\n  Fix: {fix}"


class Section(BaseModel):
    """One layer's settings. Keys of other layers are ignored; values are not coerced."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", validate_default=True)


def setting(default=..., *, doc, fix, problem=None, **constraints):
    """A group data key. `problem`: what a value refused by pydantic's own checks is
    (its message is kept in brackets); `fix`: what to write instead."""
    return Field(default, description=doc, json_schema_extra={"fix": fix, "problem": problem}, **constraints)


_UNSET = object()


def refuse(problem, fix, key=None, value=_UNSET, shown=None):
    """The error a validator raises: a problem and its fix; `key`/`value` when a model
    validator speaks about one of its fields; `shown` replaces a value that must not be printed."""
    context = {"problem": problem, "fix": fix}
    context.update({name: v for name, v in (("key", key), ("shown", shown)) if v is not None})
    if value is not _UNSET:
        context["value"] = value
    return PydanticCustomError("platform", "{problem}", context)


def check(predicate, problem, fix):
    """An AfterValidator that refuses values for which `predicate` is false."""

    def validate(value):
        if not predicate(value):
            raise refuse(problem, fix)
        return value

    return AfterValidator(validate)


_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DNS_LABELS_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
DOMAIN_RE = re.compile(rf"^(?:{_LABEL}\.)+[a-z][a-z0-9-]{{0,62}}$")
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?P<domain>[^@\s]+)$")


def is_ip_address(value, version=None):
    """An IP address (of `version` 4 or 6 when given)."""
    try:
        return version in (None, ipaddress.ip_address(value).version)
    except (ValueError, TypeError):
        return False


def is_email(value):
    match = EMAIL_RE.match(value)
    return bool(match) and bool(DOMAIN_RE.match(match["domain"].lower()))


Domain = Annotated[
    str,
    check(
        DOMAIN_RE.match,
        "not a lower-case DNS name with at least two labels",
        'write a name like "example.org": no scheme, no path, no trailing dot',
    ),
]
# A file on the machine pyinfra runs on (uploaded by the deploy), e.g. a private CA's certificate.
PemFile = Annotated[str, check(os.path.isfile, "no such file on this machine", "give the path of a PEM file, or None")]
Email = Annotated[str, check(is_email, "not an e-mail address", 'write an address like "ops@example.org"')]
# A Meta object id (Page, phone number, WhatsApp Business Account): digits only.
MetaId = Annotated[
    str,
    check(
        re.compile(r"^[0-9]{5,20}$").match,
        "not a numeric Meta id",
        'copy it (digits only) from Meta Business Suite or WhatsApp Manager, e.g. "1100000001"',
    ),
]
# A directory of its own under a top-level one (/var/backups/x), and a systemd OnCalendar expression.
DEDICATED_DIR_PATTERN = r"^/[A-Za-z0-9._-]+/[A-Za-z0-9._-]+[A-Za-z0-9._/-]*$"
CALENDAR_PATTERN = r"^[A-Za-z0-9*:/,. ~-]+$"
Port = Annotated[int, Field(ge=1, le=65535)]
PositiveInt = Annotated[int, Field(ge=1)]


def _cidr(value):
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as e:
        hint = ""
        try:
            hint = f" (did you mean {ipaddress.ip_network(value, strict=False)}?)"
        except ValueError:
            pass
        raise refuse(
            f"not a network in CIDR notation: {e}{hint}",
            'write each entry as address/prefix with no host bits, e.g. "203.0.113.0/24"',
        ) from None


Cidr = Annotated[str, AfterValidator(_cidr)]

# repository[:tag][@digest]; the tag is what must be pinned
IMAGE_RE = re.compile(
    r"^(?P<repo>[a-z0-9][a-z0-9._/:-]*?)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$"
)


def _image(value):
    match = IMAGE_RE.match(value)
    if not match:
        raise refuse("not an image reference", 'write it as repository:tag, e.g. "redis:7.4.5"')
    if not match["tag"] or match["tag"] == "latest":
        raise refuse(
            "the tag must be pinned (no tag and 'latest' both float)",
            f'name an exact version, e.g. "{match["repo"]}:<version>"; upgrades then happen only when you bump it',
        )
    return value


ImageRef = Annotated[str, AfterValidator(_image)]


_Item = TypeVar("_Item")
# A list in group data (or a tuple), each item an _Item: Items[Email].
Items = Annotated[tuple[_Item, ...], Field(strict=False)]
