"""Every documented API operation, fed generated input by schemathesis, on the real database.

Generated from the app's own OpenAPI document: well-formed and malformed paths,
queries and bodies, as the district operator (who may call nearly everything) and
as a town's grid admin. No answer may be a server error or anything but JSON, and
neither an answer nor a log line may carry a stream credential in any form.
Everything runs inside the test's transaction, which is rolled back.
"""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy import text

from tests.integration.test_cameras import all_text_forms

# Examples per operation and mode (valid input, then invalid input).
EXAMPLES = 10
SECRET = "Fuzz:S3cret/@%#pw"
# Answers that are files or pages, not JSON.
BINARY_TYPES = ("image/", "multipart/x-mixed-replace", "text/csv", "application/zip",
                "application/geopackage", "application/x-protobuf",
                "application/vnd.mapbox-vector-tile", "application/octet-stream")


@pytest.fixture
def api_schema(app, session):
    """The app's OpenAPI document as schemathesis reads it, with a camera that has credentials."""
    camera_id = session.scalar(text("SELECT id FROM cameras ORDER BY gb_id LIMIT 1"))
    session.execute(text("DELETE FROM camera_credentials WHERE camera_id = :c"), {"c": camera_id})
    session.execute(text("INSERT INTO camera_credentials VALUES (:c, 'admin', :p)"),
                    {"c": camera_id, "p": SECRET})
    session.flush()
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


def session_cookie(client) -> dict[str, str]:
    """Return a signed-in test client's session cookie."""
    return {"gridmap_session": client.get_cookie("gridmap_session").value}


def check_answer(case, cookies: dict[str, str]) -> None:
    """Call the operation; fail on a server error, a non-JSON error or a credential."""
    response = case.call(cookies=cookies, headers={"Accept-Encoding": "identity"})
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, (where, response.text[:300])
    kind = response.headers.get("Content-Type", [""])
    kind = kind[0] if isinstance(kind, list) else kind
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and body.get("error") and body.get("message"), (where, body)
    if not kind.startswith(BINARY_TYPES):
        for form in all_text_forms(SECRET):
            assert form.encode() not in response.content, where


# The district operator may call nearly everything; a town's grid admin meets the
# jurisdiction and role checks (fewer examples: the same code paths otherwise).
USERS = [("district-operator", EXAMPLES), ("gulou-gridadmin", EXAMPLES // 2)]


@pytest.mark.parametrize("username, examples", USERS, ids=[u for u, _ in USERS])
def test_no_generated_call_fails_on_the_server_or_leaks(api_schema, client_as, caplog,
                                                        username, examples):
    # One test over all operations (schemathesis' own pytest hook does not run
    # under this pytest); each operation gets its own Hypothesis search.
    cookie = session_cookie(client_as(username))
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 90
    caplog.set_level("DEBUG")
    for operation, mode in itertools.product(operations, GenerationMode):

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def calls(case) -> None:
            check_answer(case, cookie)

        try:
            calls()
        except Unsatisfiable:
            # An operation without parameters or body has no invalid input.
            assert mode is GenerationMode.NEGATIVE, operation.label
    # Nor did any log line of all those calls carry the credential.
    assert caplog.records
    for form in all_text_forms(SECRET):
        assert form not in caplog.text
