"""GET /api/openapi.json, and the real API fuzzed against it with schemathesis.

Checks: no 5xx, status codes and bodies as documented, every error problem+json.
The example count is bounded so the fuzzing stays well under a minute.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.factories import make_product


def test_the_document_is_served_and_lists_the_api(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    assert {"/api/checkout", "/api/products", "/api/orders/status/{jobId}"} <= set(
        document["paths"]
    )
    routes = {
        rule.rule.replace("<job_id>", "{jobId}").replace("<order_number>", "{orderNumber}")
        for rule in client.application.url_map.iter_rules()
        if rule.rule.startswith("/api/")
    }
    assert routes <= set(document["paths"]), routes - set(document["paths"])


def problem_json_for_errors(ctx, response, case):  # a schemathesis check
    if case.path == "/api/health/queues":  # its 503 is the seed's health body, documented
        return None
    if response.status_code >= 400:
        headers = {name.lower(): value for name, value in response.headers.items()}
        media = headers.get("content-type", [""])
        media = media[0] if isinstance(media, list) else media
        assert media.startswith("application/problem+json"), (response.status_code, media)
    return None


def test_fuzz_the_api(app, session):
    """Every operation, schema-valid and hostile inputs (schemathesis + hypothesis)."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        problem_json_for_errors,
    ]
    make_product(session, sku="FUZZ-1", stock=1000)
    api = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 5  # schemathesis leaves out the document itself
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case):
            case.call_and_validate(checks=checks)

        fuzz()
