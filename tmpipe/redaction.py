"""Credentials inside URLs (``scheme://user:password@host``), masked wherever a URL is shown.

One helper for every place a URL can leave the process: traces, stdout, logs, error
messages, MLflow params. ``user:password@`` keeps the user (useful when debugging) and
masks the password; a bare ``token@`` (a token used as the user name) is masked whole.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
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
