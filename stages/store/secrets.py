"""Keeping secrets out of messages, logs, markers and the run history: the one place that does.

`redact(text)` removes URL passwords and key=value secrets wherever they appear, and every
secret this process was given: the password of DATABASE_URL (whole, percent-decoded and in the
fragments libpq echoes when an unencoded `@`, `/`, `?`, `#`, `%` or space splits it), the raw
DATABASE_URL, PGPASSWORD and the AWS secret key and session token. Everything that prints, logs
or records text passes it through here (`RedactingFormatter` for log handlers).

Lives apart from stages.store.db so that modules which never talk to PostgreSQL (the runner, the
history, the status view) can redact text without importing psycopg.
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from urllib.parse import unquote

MASK = "***"
# The password of a URL (scheme://user:PASSWORD@host; greedy up to the last @ so an unescaped @
# or a space in the password is hidden too).
URL_PASSWORD = re.compile(r"(?P<head>://[^:/?#@\s]*:)(?P<password>.+)@")
# A key=value (or key: value) setting that holds a secret: libpq DSNs, query strings, AWS config.
KEY_SECRET = re.compile(
    r"(?P<head>(?:^|(?<=[\s?&,;]))(?:password|passwd|secret|token|aws_secret_access_key"
    r"|aws_session_token)\s*[=:]\s*)(?P<password>'(?:[^'\\]|\\.)*'|\"[^\"]*\"|[^\s&,;]*)",
    re.IGNORECASE,
)
# Where libpq and URL parsers cut a userinfo that was not percent-encoded; the pieces between
# these end up in messages ("failed to resolve host 'ssw0rd@127.0.0.1'").
_CUTS = re.compile(r"[@:/?#%\s'\"\\=&;,\[\]]+")
# Shorter pieces are not worth hiding (and would garble every message they occur in).
_SHORTEST_FRAGMENT = 3
# Environment variables whose whole value is a secret.
SECRET_VARIABLES = ("PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# Characters that must be percent-encoded in a URL's user name or password for libpq to read it.
UNENCODED_USERINFO = re.compile(r"[@/?#\s]|%(?![0-9A-Fa-f]{2})")


def redact(text: str) -> str:
    """`text` with URL passwords, key=value secrets and this process's secrets replaced by ***."""
    # Patterns first, so a URL keeps its user and host ("postgresql://leads:***@db/leads").
    text = URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    text = KEY_SECRET.sub(rf"\g<head>{MASK}", text)
    database_url = os.environ.get("DATABASE_URL", "")
    values = (os.environ.get(name, "") for name in SECRET_VARIABLES)
    for secret in _environment_secrets(database_url, *values):
        text = text.replace(secret, MASK)
    return text


def scrub(message: str, url: str) -> str:
    """`message` without any part of the secrets in connection string `url` (libpq may echo
    pieces of a DSN it rejects), then `redact`ed."""
    for secret in connection_secrets(url):
        message = message.replace(secret, MASK)
    return redact(message).strip()


def connection_secrets(url: str) -> list[str]:
    """Every text that would give away the password in `url`, longest first: the raw URL, the
    userinfo, the password whole and percent-decoded, and its fragments of 3+ characters."""
    url = url.strip()
    passwords = [m["password"].strip("'\"") for m in KEY_SECRET.finditer(url)]
    userinfo = userinfo_of(url)
    # Without percent-encoding nobody knows where the password ends: all after the first ':'
    # may be it, whatever libpq made of it.
    passwords.append(userinfo.partition(":")[2])
    passwords = [password for password in passwords if password]
    if not passwords:
        return []  # nothing secret: the URL may be shown as it is
    found = {url, userinfo} - {""}
    for password in passwords:
        for form in {password, unquote(password)}:
            found.add(form)
            found.update(piece for piece in _CUTS.split(form) if len(piece) >= _SHORTEST_FRAGMENT)
    return sorted(found, key=len, reverse=True)


def userinfo_of(url: str) -> str:
    """The `user:password` part of a URL-form connection string ("" for key=value or none):
    everything between `://` and the last `@`, as users paste it."""
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest or " " in scheme:
        return ""
    return rest.rpartition("@")[0]


def needs_percent_encoding(url: str) -> bool:
    """Whether the user name or password of URL-form `url` holds characters libpq would cut it
    at (`@`, `/`, `?`, `#`, white space, or a `%` that starts no %XX escape)."""
    return bool(UNENCODED_USERINFO.search(userinfo_of(url)))


@lru_cache(maxsize=8)
def _environment_secrets(database_url: str, *values: str) -> tuple[str, ...]:
    found = set(connection_secrets(database_url)) if database_url.strip() else set()
    found.update(value for value in values if len(value) >= _SHORTEST_FRAGMENT)
    return tuple(sorted(found, key=len, reverse=True))


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output, tracebacks included, has passed through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
