"""Which API key may go to which endpoint.

The rule: ``$OPENAI_API_KEY`` goes only to OpenAI's own https endpoint. Any other endpoint gets a
key only from an environment variable the caller names for it (``api_key_env=``, ``--api-key-env``),
and never over plain http to a host that is not this machine. Keys are read from the environment
at request time; they are never stored, logged, cached or shown in an error.

Examples:
    >>> key_env_for("https://api.openai.com/v1", None)
    'OPENAI_API_KEY'
    >>> key_env_for("http://127.0.0.1:8000/v1", None) is None
    True
    >>> key_env_for("http://127.0.0.1:8000/v1", "VLLM_KEY")
    'VLLM_KEY'
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from causal.errors import CausalError

OPENAI_URL = "https://api.openai.com/v1"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BEARER = re.compile(r"(?i)bearer\s+\S+")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine by its address, or by a ``localhost`` name that resolves
    only to loopback addresses here (``evil.localhost`` is whatever the resolver says it is, so it
    is looked up, not trusted by its spelling; any other name is not loopback).

    Returns:
        True for 127.0.0.0/8, ``::1``, and ``localhost`` / ``*.localhost`` names whose every address
        is one of those.

    Examples:
        >>> is_loopback("127.0.0.2"), is_loopback("localhost"), is_loopback("10.0.0.1")
        (True, True, False)
    """
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host != "localhost" and not host.endswith(".localhost"):
        return False
    try:
        found = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    try:
        return bool(found) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in found)
    except ValueError:
        return False


def check_url(url: str) -> str:
    """Validate an OpenAI-compatible server's base URL.

    Returns:
        the URL without a trailing ``/``.

    Examples:
        >>> check_url("http://127.0.0.1:8000/v1/")
        'http://127.0.0.1:8000/v1'
    """
    text = str(url).strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise CausalError(f"not a valid server URL: '{text}'") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CausalError(f"server URL must look like http(s)://host:port/v1, got '{text}'")
    if parts.username or parts.password:
        raise CausalError("server URL must not hold credentials: put the key in an environment "
                          "variable and name it with api_key_env / --api-key-env")
    return text


def is_openai(url: str) -> bool:
    """Whether ``url`` is OpenAI's own https endpoint.

    Returns:
        True for ``https://api.openai.com`` (port 443).

    Examples:
        >>> is_openai("https://api.openai.com/v1"), is_openai("http://api.openai.com/v1")
        (True, False)
    """
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.hostname == "api.openai.com" and parts.port in (None, 443)


def key_env_for(url: str, api_key_env: str | None) -> str | None:
    """The environment variable whose key may be sent to ``url``.

    Args:
        url: the server's base URL.
        api_key_env: the variable the caller named for this endpoint, or None.

    Returns:
        ``api_key_env`` when named; ``"OPENAI_API_KEY"`` for OpenAI's own https endpoint; else
        None (no key is sent).

    Raises:
        CausalError: a badly formed name, or a named key that would go over plain http to a host
            that is not this machine.

    Examples:
        >>> key_env_for("http://example.com/v1", "MY_KEY")
        Traceback (most recent call last):
        ...
        causal.errors.CausalError: refusing to send the key in $MY_KEY over plain http to example.com: use https, or a server on this machine (127.0.0.1)
    """
    parts = urlsplit(url)
    if api_key_env:
        name = str(api_key_env).strip()
        if not _ENV_NAME.match(name):
            raise CausalError(f"api_key_env must name an environment variable (letters, digits, _), "
                              f"got {name[:40]!r}")
        if parts.scheme != "https" and not is_loopback(parts.hostname):
            raise CausalError(f"refusing to send the key in ${name} over plain http to "
                              f"{parts.hostname}: use https, or a server on this machine (127.0.0.1)")
        return name
    return OPENAI_KEY_ENV if is_openai(url) else None


def redact(text: str, key: str | None) -> str:
    """``text`` with ``key`` and any ``Bearer ...`` credential replaced by ``[redacted]``.

    Returns:
        the redacted text.

    Examples:
        >>> redact("got Authorization: Bearer sk-1 and sk-1", "sk-1")
        'got Authorization: [redacted] and [redacted]'
    """
    if key:
        text = text.replace(key, "[redacted]")
    return _BEARER.sub("[redacted]", text)
