"""Secrets kept out of everything that leaves the process: traces, stdout, logs, error messages,
MLflow params, XCom and WebUI artifacts. One module, one marker (``REDACTED``).

Credentials inside URLs (``scheme://user:password@host``) are masked wherever a URL is shown: ``user:password@`` keeps the user (useful when debugging) and
masks the password; a bare ``token@`` (a token used as the user name) is masked whole.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
REDACTED = "[REDACTED]"
SECRET_KEY_MARKERS = ("key", "token", "password", "secret")
MIN_STANDALONE_SECRET = 6

# The authority's userinfo: everything up to the LAST "@" before the path, query or fragment,
# so an unencoded "@" inside a password does not leave its tail behind.
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^/?#\s\"'<>]*)@", re.IGNORECASE)


def _mask(match: re.Match) -> str:
    user, has_password, _ = match.group("userinfo").partition(":")
    masked = f"{user}:{MASK}" if has_password and user else MASK
    return f"{match.group('scheme')}{masked}@"


def redact_url_credentials(text: str) -> str:
    """``text`` with the userinfo of every URL in it masked; other text is unchanged."""
    return _USERINFO.sub(_mask, text) if "@" in text else text


def redact_urls_in(value: Any) -> Any:
    """The same for every string (keys included) of a JSON-like value."""
    if isinstance(value, str):
        return redact_url_credentials(value)
    if isinstance(value, dict):
        return {redact_urls_in(key): redact_urls_in(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_urls_in(item) for item in value]
    return value


def url_secrets(url: str | None) -> list[str]:
    """The password (or bare token) of a URL, to redact it wherever it shows up on its own too.

    Very short ones are left to the URL masking: replacing every "pw" in a trace would mangle it.
    """
    match = _USERINFO.search(url or "")
    if not match:
        return []
    user, has_password, password = match.group("userinfo").partition(":")
    secret = password if has_password else user
    return [secret] if len(secret) >= MIN_STANDALONE_SECRET else []


class UrlCredentialsFilter(logging.Filter):
    """Masks URL credentials in a record's message and traceback text (attach it to a handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_url_credentials(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_url_credentials(record.exc_text)
        return True


def without_url_credentials(url: str) -> str:
    """``url`` with its userinfo left out entirely (a link to show, not a mask: it must still work)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def is_secret_key(dotted_key: str) -> bool:
    """Any part of the key mentions key/token/password/secret (case-insensitive)."""
    lowered = dotted_key.lower()
    return any(marker in lowered for marker in SECRET_KEY_MARKERS)


def redact_secrets(value: Any, secrets: list[str]) -> Any:
    """``value`` with every occurrence of each secret replaced and URL credentials masked, in all strings and keys."""
    secrets = [secret for secret in secrets if secret]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return redact_url_credentials(value)
    if isinstance(value, dict):
        return {redact_secrets(k, secrets): redact_secrets(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(item, secrets) for item in value]
    return value


def redact_secret_keys(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Copy of ``config`` with secret-named leaves replaced by the marker and URL credentials masked."""
    clean: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            clean[key] = redact_secret_keys(value, prefix=f"{dotted}.")
        elif is_secret_key(dotted) and value is not None:
            clean[key] = REDACTED
        elif isinstance(value, str):
            clean[key] = redact_url_credentials(value)
        else:
            clean[key] = value
    return clean
