"""Parse query parameters strictly: a bad value is a 400 with a reason."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from flask import current_app, request
from werkzeug.routing import IntegerConverter

from gridmap.errors import InvalidInput
from gridmap.validation import BIGINT_MAX


class RowIdConverter(IntegerConverter):
    """``<int:…>`` in routes, up to bigint: a larger number names no row (404, not a 500)."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", BIGINT_MAX)
        super().__init__(url_map, *args, **kwargs)


def refuse_nul_characters() -> None:
    """Refuse a request whose path, query or form carries a NUL character (400).

    PostgreSQL text cannot hold NUL, so such a value could only fail deep inside a
    query; this says so at the edge. (JSON bodies and uploads are caught when a
    query refuses them, see web.errors.)
    """
    # The raw query string holds a NUL as %00 (or as the byte itself): one scan, no parsing.
    query = request.query_string
    if "\x00" in request.path or b"%00" in query or b"\x00" in query:
        raise InvalidInput(NUL_REASON)
    if request.mimetype == "application/x-www-form-urlencoded" and any(
            "\x00" in text for text in (*request.form.keys(), *request.form.values())):
        raise InvalidInput(NUL_REASON)


NUL_REASON = "text must not contain NUL (0x00) characters"


def float_arg(name: str, default: float | None = None) -> float:
    """Return a finite float query argument (required when no default)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        if default is None:
            raise InvalidInput(f"missing query parameter {name!r}")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name!r} must be a number", value=raw[:40]) from None
    if not math.isfinite(value):
        raise InvalidInput(f"{name!r} must be finite")
    return value


def int_arg(name: str, default: int, *, minimum: int = 0, maximum: int = 10**9) -> int:
    """Return an integer query argument within [minimum, maximum]."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or len(raw) > 12:
        raise InvalidInput(f"{name!r} must be an integer", value=raw[:40])
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{name!r} must be within {minimum}–{maximum}", value=value)
    return value


def list_arg(name: str) -> tuple[str, ...]:
    """Return a repeated or comma-separated query argument as a tuple."""
    values: list[str] = []
    for raw in request.args.getlist(name):
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return tuple(values)


def bbox_arg(name: str = "bbox") -> tuple[float, float, float, float]:
    """Return ``west,south,east,north`` as four finite floats."""
    parts = request.args.get(name, "").split(",")
    if len(parts) != 4:
        raise InvalidInput(f"{name} must be four numbers: west,south,east,north")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InvalidInput(f"{name} must be four numbers: west,south,east,north") from None
    if not all(math.isfinite(v) for v in values):
        raise InvalidInput(f"{name} values must be finite")
    return values  # type: ignore[return-value]


def prefix_arg() -> str:
    """Return the optional ``prefix`` code filter (digits only)."""
    prefix = request.args.get("prefix", "")
    if prefix and not (prefix.isascii() and prefix.isdigit() and len(prefix) <= 15):
        raise InvalidInput("prefix must be up to 15 digits", prefix=prefix[:40])
    return prefix


def close_uploads(_exc: BaseException | None = None) -> None:
    """Close spooled upload files of the request, even when the handler failed early."""
    if "files" in request.__dict__:  # only when the form was actually parsed
        for upload in request.files.values():
            upload.close()


def json_object(max_bytes: int | None = None, *, optional: bool = False) -> dict[str, Any]:
    """Return the JSON object body: 413 above ``max_bytes``, 400 unless an object.

    ``optional``: a request without a body gives {} (a step with nothing to add).
    """
    if max_bytes is not None:
        # Per-request limit (Flask ≥ 3.1), below the app-wide one for uploads.
        request.max_content_length = max_bytes
    if optional and not request.content_length and not request.is_json:
        return {}
    if not request.is_json:
        raise InvalidInput("the body must be a JSON object")
    try:
        data = current_app.json.loads(request.get_data(cache=True))
    except ValueError as error:  # orjson's JSONDecodeError says what and where
        raise InvalidInput(f"the body is not valid JSON: {str(error)[:120]}") from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    return data


def uploaded_file(max_bytes: int, field: str = "file") -> tuple[bytes, str]:
    """Return (bytes, filename) of a multipart upload: 400 when missing, 413 above ``max_bytes``.

    The upload is closed once read: Werkzeug spools large ones to a temporary file.
    """
    from gridmap.errors import PayloadTooLarge

    upload = request.files.get(field)
    if upload is None or not upload.filename:
        raise InvalidInput(f"upload a file in the {field!r} form field", field=field)
    try:
        data = upload.read(max_bytes + 1)
    finally:
        upload.close()
    if len(data) > max_bytes:
        size = f"{max_bytes // 1024 // 1024} MB" if max_bytes >= 1024 * 1024 else f"{max_bytes:,} bytes"
        raise PayloadTooLarge(f"files are limited to {size}")
    return data, upload.filename


def edited_version(body: dict[str, Any], parse: Callable[[Any], int], *, query: bool = False) -> int:
    """Return the version an edit started from: ``If-Match``, the body's ``version``
    (and ``?version=`` with ``query``); 400 when none is given or they disagree."""
    given = [request.headers.get("If-Match"), body.get("version")]
    if query:
        given.append(request.args.get("version"))
    values = {parse(v) for v in given if v is not None}
    if not values:
        raise InvalidInput('say which version you edited: If-Match: "<version>" or "version"')
    if len(values) > 1:
        raise InvalidInput("If-Match and version disagree")
    return values.pop()
