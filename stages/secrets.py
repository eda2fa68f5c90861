"""Keeping secrets out of messages, logs and the run history.

Lives apart from stages.db so that modules which never talk to PostgreSQL (the runner, the
history, the status view) can redact text without importing psycopg.
"""

from __future__ import annotations

import re

# The password of a URL (scheme://user:PASSWORD@host; greedy up to the last @ so an unescaped @
# or a space in the password is hidden too).
URL_PASSWORD = re.compile(r"(?P<head>://[^:/?#@\s]*:)(?P<password>.+)@")
# A key=value (or key: value) setting that holds a secret: libpq DSNs, query strings, AWS config.
KEY_SECRET = re.compile(
    r"(?P<head>(?:^|(?<=[\s?&,;]))(?:password|passwd|secret|token|aws_secret_access_key"
    r"|aws_session_token)\s*[=:]\s*)(?P<password>'(?:[^'\\]|\\.)*'|\"[^\"]*\"|[^\s&,;]*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with URL passwords and key=value secrets replaced by ***."""
    text = URL_PASSWORD.sub(r"\g<head>***@", text)
    return KEY_SECRET.sub(r"\g<head>***", text)


def scrub(message: str, url: str) -> str:
    """`message` without the password of `url` (libpq may echo it when it rejects a DSN)."""
    for pattern in (URL_PASSWORD, KEY_SECRET):
        for match in pattern.finditer(url):
            password = match["password"].strip("'\"")
            if password:
                message = message.replace(password, "***")
    return redact(message).strip()
