"""Fuzz every operation of the published OpenAPI document with schemathesis (bounded examples):
no input may produce a 5xx, authenticated as admin so the handlers behind the auth check run too."""
from __future__ import annotations

import ssl

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402


@pytest.fixture(scope="session")
def api_schema(server):
    with server.client() as c:
        doc = c.get("/api/v1/openapi.json").json()
    from schemathesis.config import (CoveragePhaseConfig, GenerationConfig, PhasesConfig, ProjectConfig,
                                     ProjectsConfig, SchemathesisConfig)
    project = ProjectConfig(generation=GenerationConfig(max_examples=MAX_EXAMPLES, deterministic=True),
                            phases=PhasesConfig(coverage=CoveragePhaseConfig(enabled=COVERAGE)))
    return schemathesis.openapi.from_dict(doc, config=SchemathesisConfig(projects=ProjectsConfig(default=project)))


@pytest.fixture(scope="session")
def admin_headers(server):
    with server.login() as c:
        return {"Authorization": c.headers["Authorization"]}


MAX_EXAMPLES = 6
COVERAGE = True
schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, server, admin_headers):
    if case.method == "DELETE" and case.path == "/api/v1/session":
        return  # logging out would end the fuzzer's own session; logout has its own tests
    response = case.call(base_url=server.base_url, headers=admin_headers, verify=server.ca, timeout=30)
    case.validate_response(response, checks=(not_a_server_error,))
