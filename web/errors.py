"""Map domain exceptions and HTTP errors to 4xx responses in one place: JSON for API clients, a page for browsers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from geodata.coords import CoordinateError
from gridmap import errors as domain
from gridmap.validation import mask_url_userinfo
from web import i18n
from web.params import NUL_REASON
from web.reasons import localize, localize_rows

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[Exception], int] = {
    domain.NotFound: 404,
    domain.InvalidInput: 400,
    domain.Conflict: 409,
    domain.PayloadTooLarge: 413,
    domain.Forbidden: 403,
    domain.DatabaseUnavailable: 503,
    CoordinateError: 400,
}


def register_status(exc_type: type[Exception], status: int) -> None:
    """Let another room's exception family map to an HTTP status."""
    STATUS_BY_ERROR[exc_type] = status


def status_for(exc: Exception) -> int | None:
    """Return the HTTP status for a domain exception, or None if unknown."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return None


def error_response(status: int, reason: str, *, message: str | None = None, **details):
    """Return a JSON error body ``{"error", "reason", "message"[, "details"]}`` with the status.

    ``reason`` is the English text API clients read; ``message`` says it in the
    request's language, for pages to show (rows of an import report get theirs too).
    """
    lang = i18n.current_language()
    body: dict[str, Any] = {"error": status, "reason": reason,
                            "message": message or localize(reason, lang)}
    if details:
        rows = details.get("errors")
        if isinstance(rows, list):
            details = {**details, "errors": localize_rows(rows, lang)}
        body["details"] = details
    return jsonify(_answerable(body)), status


def answerable(value: Any) -> Any:
    """Return a body (an error's, or a 200's warnings) safe to send: see _answerable."""
    return _answerable(value)


def _answerable(value: Any, depth: int = 0) -> Any:
    """Return an error body safe to send: no URL password, and nothing JSON cannot carry.

    Reasons and details quote what the client sent ("unknown source '…'", the
    version it edited). A stream URL typed into the wrong field must not come
    back with its password, and a value orjson refuses (an integer past 64 bits,
    half a surrogate pair) must not turn the 4xx into a 500.
    """
    if isinstance(value, str):
        return mask_url_userinfo(value.encode("utf-8", "replace").decode("utf-8"))
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if depth > 64:  # GeoJSON in details nests about ten deep; deeper is no answer of ours
        return None
    if isinstance(value, Mapping):
        return {_answerable(str(k), depth + 1): _answerable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_answerable(v, depth + 1) for v in value]
    return _answerable(str(value), depth + 1)


ERROR_TITLES = {
    400: {"zh": "请求有误", "en": "Bad request"},
    401: {"zh": "未登录或登录已过期，请重新登录", "en": "Not signed in, or the sign-in expired: sign in again"},
    403: {"zh": "无权访问", "en": "Not allowed"},
    404: {"zh": "页面或数据不存在", "en": "Not found"},
    405: {"zh": "不支持此操作", "en": "Method not allowed"},
    409: {"zh": "数据已被他人修改", "en": "Conflict"},
    413: {"zh": "上传内容过大", "en": "Too large"},
    429: {"zh": "操作过于频繁", "en": "Too many requests"},
    500: {"zh": "服务器内部错误，已通知运维人员", "en": "Internal error; the operators have been notified"},
    502: {"zh": "视频流不可用", "en": "Video stream unavailable"},
    503: {"zh": "服务暂不可用", "en": "Service unavailable"},
}
MESSAGES = {
    "err_back_to_map": {"zh": "返回地图", "en": "Back to the map"},
    "err_go_back": {"zh": "返回上一页", "en": "Go back"},
    "err_other": {"zh": "出错了", "en": "Something went wrong"},
    **{f"err_{code}": title for code, title in ERROR_TITLES.items()},
}
i18n.register(MESSAGES)


def wants_page() -> bool:
    """Return whether a browser navigated here (it asks for HTML first), not an API client.

    Images, scripts and fetch() calls accept */* and get JSON, as API clients do.
    The one rule for every answer that could be either: error pages, sign-in
    redirects, the sign-in and sign-out answers.
    """
    if request.path.startswith(("/api/", "/open311/")) or request.is_json:
        return False
    if not request.accept_mimetypes.provided:
        return True  # no Accept at all: a page path answers as a page
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def error_page(status: int, detail: str | None = None) -> Response:
    """Return an HTML error page in the request's language, with ways back.

    ``detail`` is a domain error's own reason (e.g. "no such camera"); Werkzeug's
    generic descriptions and internal errors show only the translated title.
    """
    lang = i18n.current_language()
    title = i18n.translate(f"err_{status}" if status in ERROR_TITLES else "err_other", lang)
    try:
        html = render_template("error.html", status=status, title=title, detail=detail,
                               lang=lang)
    except Exception:  # the error page must not fail in turn
        log.exception("cannot render the error page")
        return Response(f"{status} {title}", status, mimetype="text/plain")
    return Response(html, status, mimetype="text/html")


def reason_answer(status: int, reason: str, **details) -> Response:
    """Return a domain reason as an error page for a browser, or as the JSON error body."""
    if wants_page():
        return error_page(status, _answerable(localize(reason, i18n.current_language())))
    answer, _ = error_response(status, reason, **details)
    answer.status_code = status
    return answer


def init_app(app: Flask) -> None:
    """Register the error handlers: JSON for API clients, a page for browsers."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if isinstance(exc, CSRFError):
            return _csrf_refused()
        if wants_page():
            if exc.code is None or exc.code < 400:
                return exc
            answer = error_page(exc.code)
        else:
            code = exc.code or 500
            title = ERROR_TITLES.get(code)
            body, status = error_response(
                code, exc.description or exc.name,
                message=title and i18n.translate(f"err_{code}", i18n.current_language()))
            answer = body
            answer.status_code = status
        # Keep what the error says besides its body (Allow on a 405, Retry-After).
        for name, value in exc.get_response().headers.items():
            if name.lower() not in ("content-type", "content-length"):
                answer.headers[name] = value
        return answer

    @app.errorhandler(Exception)
    def any_error(exc: Exception):
        status = status_for(exc)
        if status is not None:
            details = getattr(exc, "details", {}) or {}
            return reason_answer(status, getattr(exc, "reason", None) or str(exc), **details)
        refused = _refused_value(exc)
        if refused is not None:
            return refused
        unavailable = _database_unavailable(exc)
        if unavailable is not None:
            return unavailable
        # Unknown failures: log server-side (no request data), answer without a traceback.
        log.exception("unhandled %s on %s %s", type(exc).__name__, request.method, request.path)
        reason = "internal error; the operators have been notified"
        return error_page(500) if wants_page() else error_response(500, reason)


CSRF_REASON = "the CSRF token is missing or stale (signed in again elsewhere?); reload the page"
# Set on a refused CSRF token, so the browser glue (gridmap.js) can fetch a fresh
# one and send the request again without reading the body.
CSRF_HEADER = "X-Gridmap-Csrf"


def _csrf_refused() -> Response:
    """Answer a missing or stale CSRF token: 400 with its own reason, never the generic title."""
    if wants_page():
        answer = error_page(400, localize(CSRF_REASON, i18n.current_language()))
    else:
        answer, _ = error_response(400, CSRF_REASON, csrf=True)
        answer.status_code = 400
    answer.headers[CSRF_HEADER] = "stale"
    return answer


# SQLSTATEs of values the database cannot take: text for a number, out of range,
# too long, not encodable, a bad date. Other data errors (division by zero) are bugs.
REFUSED_VALUE_STATES = frozenset({"22P02", "22003", "22001", "22021", "22P05", "22007", "22008"})


def _refused_value(exc: Exception):
    """Answer 400 if the database (or the driver, for NUL) refused a value of the request; else None.

    The input checks should have caught it first, so it is logged for the
    operators, by class and SQLSTATE only (the message may quote the value). The
    request's transaction is rolled back by its owner, so nothing is half-written.
    """
    cause = getattr(exc, "orig", None) or exc
    if not isinstance(cause, psycopg.DataError):
        return None
    # psycopg refuses NUL in text itself, before anything is sent (no SQLSTATE).
    nul = cause.sqlstate is None and "NUL" in str(cause)
    if not (nul or cause.sqlstate in REFUSED_VALUE_STATES):
        return None
    log.warning("the database refused a value on %s %s: %s %s", request.method, request.path,
                type(cause).__name__, cause.sqlstate or "")
    return reason_answer(400, NUL_REASON if nul else
                         "a value in the request is malformed or out of range")


DATABASE_UNAVAILABLE_REASON = "the database is unavailable at the moment; try again shortly"
RETRY_AFTER_S = 5


def _database_unavailable(exc: Exception):
    """Answer 503 if the database could not serve the request (a cut connection, a restart, a timeout); else None.

    Nothing of the request was stored (its transaction died with the connection),
    so trying again is safe. Logged by class and SQLSTATE only.
    """
    cause = getattr(exc, "orig", None) or exc
    if not isinstance(cause, psycopg.OperationalError):
        return None
    log.warning("the database could not serve %s %s: %s %s", request.method, request.path,
                type(cause).__name__, cause.sqlstate or "")
    answer = reason_answer(503, DATABASE_UNAVAILABLE_REASON)
    answer.headers["Retry-After"] = str(RETRY_AFTER_S)
    return answer
