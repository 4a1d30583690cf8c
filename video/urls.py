"""Camera stream URLs: credentials, validation and redaction.

Stream URLs arrive from camera ledgers and admin forms and end up in ffmpeg/OpenCV
command lines and in logs, so three rules hold here:

* credentials are split off (:func:`split_credentials`) and stored apart from the URL;
* only ``rtsp``, ``rtsps``, ``http``, ``https`` (which covers HLS ``.m3u8``) and local
  files inside the demo directory are accepted (:func:`validate_stream_url`), never
  ffmpeg pseudo-protocols such as ``concat:`` or ``pipe:``;
* error messages never repeat a password, and :func:`redact` scrubs passwords from
  arbitrary text in every encoding we know they travel in.

Credentials follow RFC 3986: the userinfo ends at the last ``@`` of the authority, and
the user name at its first ``:``, so raw ``@`` and ``:`` in passwords work. Raw ``/``,
``?`` and ``#`` end the authority; a password containing them (common: ``Admin#123``)
is recognised only when the RFC reading leaves an impossible port, and otherwise must
be percent-encoded (:func:`attach_credentials` always does). A network URL that still
has an ``@`` after its host is refused rather than guessed at: ``admin:12345#abc@host``
reads as host ``admin``, port 12345, and would store the password in the address.

A login travels in the userinfo only. Network URLs with a fragment, or whose query or
path carries a login or key (``?password=…``, ``?auth=…``, ``/user=admin_password=…``)
are refused: those parts are stored and shown like the rest of the address.

The URL never reaches a shell (ffmpeg/OpenCV get it as one argument), but characters
that break shell quoting are still refused, except ``&`` in the query and the login,
which ordinary camera URLs need (``/cam/realmonitor?channel=1&subtype=0``).
"""

from __future__ import annotations

import base64
import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, unquote

MAX_URL_LENGTH = 2048
NETWORK_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})
FILE_SCHEME = "file"
# Shell metacharacters from the brief, plus quotes and backslash, which break quoting
# just as badly if a URL is ever pasted into a shell command. No URL is ever given to a
# shell (ffmpeg and OpenCV get it as an argument), so '&' is allowed where camera URLs
# need it: between query parameters, and in a login (split off before storing).
SHELL_METACHARACTERS = frozenset(";|&$`<>'\"\\")
QUERY_AND_LOGIN_SAFE = frozenset("&")
# The port a scheme uses when the URL names none (a login is bound to scheme+host+port).
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
# Query keys and path "key=value" parts that carry a login or an access key, compared
# case-insensitively without '-', '_' and '.' (so "user_name", "Pass-Word" match too).
SECRET_KEYS = frozenset(
    {
        "user", "username", "usr", "loginuse", "loginname",
        "password", "passwd", "pass", "pwd", "psw", "pw", "loginpas", "loginpass",
        "auth", "authkey", "authorization", "token", "accesstoken", "key", "apikey",
        "secret",
    }
)
# ffmpeg protocols that read local files, run programs or splice inputs.
FFMPEG_PROTOCOLS = frozenset(
    {
        "async",
        "cache",
        "concat",
        "concatf",
        "crypto",
        "data",
        "exec",
        "fd",
        "ffmpeg",
        "ffrtmpcrypt",
        "ffrtmphttp",
        "gopher",
        "hls",
        "httpproxy",
        "pipe",
        "subfile",
        "tee",
        "unix",
    }
)
REDACTED = "***"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)([A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?)"
    r"(\.[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?)*\.?"
)
_PORT = re.compile(r"[0-9]{1,5}")
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
_B64_RUN = re.compile(r"[A-Za-z0-9+/_\-]+={0,2}")
# Shorter base64 fragments would match ordinary words in logs.
_MIN_B64_NEEDLE = 8
_URLSAFE = str.maketrans("+/", "-_")
_JSON_SHORT_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class StreamURLError(ValueError):
    """A stream URL that is malformed or not allowed; the message never holds a password."""


class Credentials(NamedTuple):
    """A user name and (decoded) password; the password is hidden from repr()."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password={REDACTED!r})"


def _authority_span(url: str) -> tuple[int, int] | None:
    """Return the start and end of the RFC 3986 authority, or None if there is none."""
    match = _SCHEME.match(url)
    if not match or not url.startswith("//", match.end()):
        return None
    start = match.end() + 2
    ends = [i for i in (url.find(c, start) for c in "/?#") if i != -1]
    return start, min(ends, default=len(url))


def _decode(part: str) -> str:
    try:
        return unquote(part, errors="strict")
    except UnicodeDecodeError:
        raise StreamURLError(
            "the credentials are not valid percent-encoded UTF-8"
        ) from None


def _plausible_hostport(text: str) -> bool:
    try:
        _parse_hostport(text)
    except StreamURLError:
        return False
    return True


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """Return the URL without ``user:password@`` and the decoded credentials, if any."""
    clean, creds, _ = _split(url)
    return clean, creds


def _split(url: str) -> tuple[str, Credentials | None, str]:
    """Split credentials off; also return the raw (still encoded) userinfo."""
    span = _authority_span(url)
    if span is None:
        return url, None, ""
    start, end = span
    rfc_hostport = url[start:end].rpartition("@")[2]
    if (
        ":" in url[start:end]
        and "@" in url[end:]
        and not _plausible_hostport(rfc_hostport)
    ):
        end = _authority_end_with_raw_delimiters(url, end)
    userinfo, at, hostport = url[start:end].rpartition("@")
    if not at:
        return url, None, ""
    username, _, password = userinfo.partition(":")
    credentials = Credentials(_decode(username), _decode(password))
    return url[:start] + hostport + url[end:], credentials, userinfo


def _authority_end_with_raw_delimiters(url: str, end: int) -> int:
    """Find where the authority ends when a password holds a raw '/', '?' or '#'."""
    # "rtsp://admin:Admin#123@host/..." reads per RFC 3986 as host "admin" with port
    # "Admin", which is impossible; the real authority ends after the host that
    # follows a later '@'. Callers only get here when the RFC reading is impossible,
    # so a valid URL with '@' in its path is never reinterpreted.
    for at in (i for i in range(end, len(url)) if url[i] == "@"):
        host_end = min(
            (i for i in (url.find(c, at + 1) for c in "/?#") if i != -1),
            default=len(url),
        )
        if _plausible_hostport(url[at + 1 : host_end]):
            return host_end
    raise StreamURLError(
        "cannot tell where the credentials end; percent-encode '/', '?', '#' "
        "and '@' in the user name and password"
    )


def given_login(creds: Credentials | None) -> Credentials | None:
    """Return the login an address gave, or None for none: ``rtsp://@host`` and
    ``rtsp://:@host`` give no login (they never replace or clear a stored one)."""
    if creds is None or (not creds.username and not creds.password):
        return None
    return creds


def stream_origin(clean_url: str | None) -> tuple[str, str, int | None] | None:
    """Return the (scheme, host, port) a stored login is bound to, None for no URL.

    Ports default by scheme (``rtsp://h/`` and ``rtsp://h:554/`` are one origin), host
    names compare without case and IP addresses in their canonical form. A local demo
    file is ``("file", "", None)``: no login is ever sent with one.
    """
    if not clean_url:
        return None
    match = _SCHEME.match(clean_url)
    span = _authority_span(clean_url)
    if match is None or span is None or match.group(1).lower() not in NETWORK_SCHEMES:
        return ("file", "", None)
    scheme = match.group(1).lower()
    hostport = clean_url[span[0] : span[1]].rpartition("@")[2]
    try:
        host, port = _parse_hostport(hostport)
    except StreamURLError:
        return (scheme, hostport.lower(), None)
    address, zone, rest = host.partition("%25")
    try:
        host = str(ipaddress.ip_address(address)) + zone + rest.lower()
    except ValueError:
        host = host.lower().rstrip(".")
    return (scheme, host, port or DEFAULT_PORTS.get(scheme))


def attach_credentials(clean_url: str, creds: Credentials | None) -> str:
    """Return ``clean_url`` with percent-encoded ``user:password@`` inserted."""
    if creds is None or (not creds.username and not creds.password):
        return clean_url
    span = _authority_span(clean_url)
    if span is None:
        raise StreamURLError("credentials can only be attached to a scheme://host URL")
    start, end = span
    if "@" in clean_url[start:end]:
        raise StreamURLError("the URL already contains credentials")
    userinfo = quote(creds.username, safe="")
    if creds.password:
        userinfo += ":" + quote(creds.password, safe="")
    return f"{clean_url[:start]}{userinfo}@{clean_url[start:]}"


def _parse_hostport(hostport: str) -> tuple[str, int | None]:
    """Split and check ``host[:port]``; IPv6 literals must be bracketed."""
    if not hostport:
        raise StreamURLError("the URL has no host")
    if hostport.startswith("["):
        close = hostport.find("]")
        if close == -1:
            raise StreamURLError("unterminated IPv6 address")
        host, rest = hostport[1:close], hostport[close + 1 :]
        address = host.split("%25", 1)[0]  # RFC 6874 zone ID, e.g. [fe80::1%25eth0]
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise StreamURLError("the bracketed host is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise StreamURLError("unexpected text after the IPv6 address")
        port_text = rest[1:] if rest else None
    else:
        if hostport.count(":") > 1:
            raise StreamURLError(
                "IPv6 addresses must be written in brackets, e.g. [fe80::1]"
            )
        host, colon, port_text = hostport.partition(":")
        port_text = port_text if colon else None
        if not host:
            raise StreamURLError("the URL has no host")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise StreamURLError("the host is not a valid IPv4 address") from None
        elif not _HOSTNAME.fullmatch(host):
            raise StreamURLError("the host name is not valid")
    if port_text is None or port_text == "":
        return host, None
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) <= 65535:
        raise StreamURLError("the port must be a number from 1 to 65535")
    return host, int(port_text)


# Why a network URL is refused for where a login or secret sits (fixed texts: they
# never repeat any part of the URL).
RESERVED_IN_PASSWORD = (
    "the URL has an '@' after the host: the password contains a reserved character "
    "(#, ?, /, @); percent-encode it (%23, %3F, %2F, %40)"
)
FRAGMENT_REFUSED = (
    "the URL has a '#' part, which is never sent to the camera; remove it (a '#' in a "
    "password must be percent-encoded as %23)"
)
SECRET_IN_QUERY = (
    "the URL's query carries a login or key (user=, password=, auth=, token=, …); "
    "remove it and give the login as rtsp://user:password@host/… or in the login fields"
)
SECRET_IN_PATH = (
    "the URL's path carries a login or key (user=…, password=…); remove it and give "
    "the login as rtsp://user:password@host/… or in the login fields"
)
_KEY_BEFORE_EQUALS = re.compile(r"([A-Za-z0-9_.\-]*)=")


def _is_secret_key(key: str) -> bool:
    """Return whether ``key`` (or its last '_'/'-'/'.' separated part) names a login or key."""
    candidates = [key] + [key[i + 1 :] for i, c in enumerate(key) if c in "_-."]
    return any(re.sub(r"[_.\-]", "", c).lower() in SECRET_KEYS for c in candidates)


def _check_after_authority(clean: str, end: int) -> None:
    """Refuse a network URL whose path, query or fragment could hold a login."""
    rest = clean[end:]
    if "@" in rest:
        raise StreamURLError(RESERVED_IN_PASSWORD)
    if "#" in rest:
        raise StreamURLError(FRAGMENT_REFUSED)
    path, _, query = rest.partition("?")
    for pair in re.split(r"[&;]", query):
        key, equals, _ = pair.partition("=")
        if equals and _is_secret_key(unquote(key, errors="replace")):
            raise StreamURLError(SECRET_IN_QUERY)
    for segment in path.split("/"):
        decoded = unquote(segment, errors="replace")
        if any(_is_secret_key(m[1]) for m in _KEY_BEFORE_EQUALS.finditer(decoded)):
            raise StreamURLError(SECRET_IN_PATH)


def _check_characters(
    text: str, *, in_credentials: bool, allowed: frozenset[str] = frozenset()
) -> None:
    for char in text:
        category = unicodedata.category(char)
        if char in "\r\n" or category in ("Zl", "Zp"):
            raise StreamURLError("the URL contains a line break")
        if category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise StreamURLError(
                f"the URL contains a control character (U+{ord(char):04X})"
            )
        if char.isspace():
            raise StreamURLError(
                "the URL contains whitespace; percent-encode spaces as %20"
            )
        if char in SHELL_METACHARACTERS and char not in allowed:
            if in_credentials:
                # Naming the character would reveal part of the password.
                raise StreamURLError(
                    "the credentials contain a shell metacharacter; percent-encode it"
                )
            raise StreamURLError(f"the URL contains the shell metacharacter {char!r}")


def validate_stream_url(url: str, *, demo_root: Path | None = None) -> str:
    """Return an allowed stream URL (or resolved demo file path), else raise StreamURLError."""
    if not isinstance(url, str):
        raise StreamURLError("the stream URL must be a string")
    if not url:
        raise StreamURLError("the stream URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise StreamURLError(
            f"the URL is {len(url)} characters long; the limit is {MAX_URL_LENGTH}"
        )
    clean, creds, raw_userinfo = _split(url)
    match = _SCHEME.match(clean)
    network = match is not None and match.group(1).lower() in NETWORK_SCHEMES
    span = _authority_span(clean) if network else None
    query_at = len(clean)
    if span is not None:
        # First, before any message could name a character of a password left in it.
        _check_after_authority(clean, span[1])
        question = clean.find("?", span[1])
        query_at = question if question != -1 else len(clean)
    _check_characters(raw_userinfo, in_credentials=True, allowed=QUERY_AND_LOGIN_SAFE)
    _check_characters(clean[:query_at], in_credentials=False)
    _check_characters(clean[query_at:], in_credentials=False, allowed=QUERY_AND_LOGIN_SAFE)

    # A one-letter "scheme" is a Windows drive letter, i.e. a path.
    if match is None or len(match.group(1)) == 1:
        return _validate_local_path(clean, demo_root)
    scheme = match.group(1).lower()
    if scheme == FILE_SCHEME:
        if creds is not None:
            raise StreamURLError("file: URLs cannot carry credentials")
        return _validate_file_url(clean, demo_root)
    if scheme not in NETWORK_SCHEMES:
        kind = "the ffmpeg protocol" if scheme in FFMPEG_PROTOCOLS else "the scheme"
        if scheme in ("javascript", "vbscript"):
            kind = "the script scheme"
        raise StreamURLError(
            f"{kind} '{scheme}:' is not allowed; use rtsp, rtsps, http, https "
            "or a file in the demo directory"
        )
    span = _authority_span(clean)
    if span is None:
        raise StreamURLError(f"a {scheme} URL needs '//' followed by a host")
    _parse_hostport(clean[span[0] : span[1]])
    if _ENCODED_CONTROL.search(clean):
        # %0D%0A in a path can be decoded into RTSP/HTTP request headers by some servers.
        raise StreamURLError("the URL contains a percent-encoded control character")
    return scheme + url[len(scheme) :]


def _validate_file_url(clean: str, demo_root: Path | None) -> str:
    rest = clean[len(FILE_SCHEME) + 1 :]
    if rest.startswith("//"):
        host, slash, path = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise StreamURLError("file: URLs must not name a remote host")
        rest = slash + path
    try:
        path_text = unquote(rest, errors="strict")
    except UnicodeDecodeError:
        raise StreamURLError(
            "the file path is not valid percent-encoded UTF-8"
        ) from None
    return _validate_local_path(path_text, demo_root)


def _validate_local_path(path_text: str, demo_root: Path | None) -> str:
    if demo_root is None:
        raise StreamURLError(
            "local files are not allowed (no demo directory is configured)"
        )
    if not path_text or "\x00" in path_text:
        raise StreamURLError("the file path is empty or contains a NUL byte")
    try:
        root = Path(demo_root).resolve(strict=True)
    except (OSError, RuntimeError):
        raise StreamURLError("the demo directory does not exist") from None
    candidate = Path(path_text)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        # resolve() follows symlinks and removes "..", so the check below sees
        # where the file really is.
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        raise StreamURLError(
            "the file path cannot be resolved (symlink loop?)"
        ) from None
    if not resolved.is_relative_to(root):
        raise StreamURLError("the file is outside the demo directory")
    if not resolved.is_file():
        raise StreamURLError("no such file in the demo directory")
    return str(resolved)


# --------------------------------------------------------------------------- redaction


def _hex_pattern(byte: int) -> str:
    return "".join(
        f"[{d.upper()}{d.lower()}]" if d.isalpha() else d for d in f"{byte:02X}"
    )


def _char_pattern(char: str) -> str:
    """Match one character literally, percent-encoded in any case, or JSON-escaped."""
    encoded = char.encode("utf-8", "surrogatepass")
    options = [re.escape(char), "".join("%" + _hex_pattern(b) for b in encoded)]
    if char == " ":
        options.append(r"\+")  # quote_plus / HTML form encoding
    if char in '"\\/':
        options.append(re.escape("\\" + char))
    elif char in _JSON_SHORT_ESCAPES:
        options.append(re.escape(_JSON_SHORT_ESCAPES[char]))
    if not char.isascii() or not char.isprintable():
        # json.dumps(ensure_ascii=True) writes \uXXXX per UTF-16 code unit.
        units = char.encode("utf-16-be", "surrogatepass")
        options.append(
            "".join(
                r"\\[uU]" + _hex_pattern(units[i]) + _hex_pattern(units[i + 1])
                for i in range(0, len(units), 2)
            )
        )
    return "(?:" + "|".join(options) + ")"


def _b64_needles(data: bytes) -> set[str]:
    """Return base64 fragments that appear wherever ``data`` is base64-encoded."""
    needles = set()
    whole = base64.b64encode(data).decode().rstrip("=")
    if len(whole) >= 4:
        needles.add(whole)
    # Inside a longer payload (e.g. "user:password" in HTTP Basic auth) the secret
    # starts at one of three byte offsets mod 3; for each, keep only the characters
    # whose 6 bits come entirely from the secret.
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + data).decode()
        first = -(-8 * shift // 6)
        last = (8 * (shift + len(data)) - 6) // 6
        core = encoded[first : last + 1]
        if len(core) >= _MIN_B64_NEEDLE:
            needles.add(core)
    return needles | {n.translate(_URLSAFE) for n in needles}


def redact(text: str, secrets: Iterable[str | Credentials | None]) -> str:
    """Replace every secret in ``text`` (plain, percent-encoded, JSON-escaped or base64) by ***."""
    words: set[str] = set()
    needles: set[str] = set()
    for secret in secrets:
        if isinstance(secret, Credentials):
            if secret.password:
                basic = f"{secret.username}:{secret.password}".encode()
                needles.add(base64.b64encode(basic).decode().rstrip("="))
                needles.add(base64.urlsafe_b64encode(basic).decode().rstrip("="))
            secret = secret.password
        if secret:
            words.add(secret)
            needles |= _b64_needles(secret.encode("utf-8", "surrogatepass"))
    if not words:
        return text
    if needles:
        text = _B64_RUN.sub(
            lambda m: REDACTED if any(n in m[0] for n in needles) else m[0], text
        )
    # Longest first, so a secret that contains another is removed whole.
    pattern = "|".join(
        "".join(_char_pattern(c) for c in word)
        for word in sorted(words, key=len, reverse=True)
    )
    return re.sub(pattern, REDACTED, text)
