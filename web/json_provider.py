"""JSON responses encoded by orjson, following Flask's own encoding rules but for dates.

Flask's default provider runs the pure-Python ``json`` encoder: a third of a
millisecond for a twenty-camera nearby answer and tens of milliseconds for the
camera layer. orjson (a compiled, well-kept library) encodes the same values an
order of magnitude faster. Keys stay sorted; text is sent as UTF-8 instead of
\\u escapes.

Dates and times are written as RFC 3339 (``2026-11-27T03:56:03+00:00``; naive
values are UTC), not Flask's HTTP-date form: the API's own parameters (``since``,
``as_of``, deadlines) take RFC 3339, its OpenAPI description says ``date-time``,
and the domain already wrote most times with ``isoformat()``. A client can now
send back any time it was given. (Formatting HTTP-dates also ran a Python call
per value: half the encoding time of a twenty-camera answer.)
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    """Encode what orjson leaves to the caller: Flask's extra types, tuple and float subclasses."""
    if isinstance(value, tuple):  # named tuples and SQLAlchemy rows, as json does
        return list(value)
    if isinstance(value, float):
        return float(value)
    return DefaultJSONProvider.default(value)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider with orjson doing the encoding."""

    ensure_ascii = False

    def _options(self, indent: int | None) -> int:
        option = _OPTIONS
        if self.sort_keys:
            option |= orjson.OPT_SORT_KEYS
        if indent:
            option |= orjson.OPT_INDENT_2
        return option

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """Serialise ``obj``; unusual json.dumps arguments fall back to the json module."""
        indent = kwargs.pop("indent", None)
        kwargs.pop("separators", None)  # orjson's output is always compact
        if kwargs or indent not in (None, 2):
            if indent is not None:
                kwargs["indent"] = indent
            return super().dumps(obj, **kwargs)
        return orjson.dumps(obj, default=_default, option=self._options(indent)).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse JSON with orjson: strict where the json module is lenient.

        A request body of a lone surrogate (``"\\ud800"``), NaN, a number beyond
        a double, or arrays nested past 1,024 levels is refused here (ValueError)
        rather than failing later: the json module let the surrogate reach the
        database driver and ran out of Python stack on the nesting, both 500s.
        """
        if kwargs:
            return super().loads(s, **kwargs)
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        """Return ``jsonify``'s response, its body orjson's UTF-8 bytes as they come.

        Flask's version formats a str and encodes it again: for the camera layer
        that is two more copies of half a megabyte.
        """
        obj = self._prepare_response_obj(args, kwargs)
        pretty = (self.compact is None and self._app.debug) or self.compact is False
        body = orjson.dumps(obj, default=_default, option=self._options(2 if pretty else None))
        return self._app.response_class(body + b"\n", mimetype=self.mimetype)
