"""The OpenAPI document tells the truth (issue 12, item 12): a bounded schemathesis run over every
operation, as an admin with a bearer token, against a copy of the demo world of its own (it may delete
what it likes). Each answer must not be a server error and must conform to its documented schema."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from support.database import copy_database
from support.server import LiveServer

from gisapp.core import db
from gisapp.core.accounts import create_token, create_user
from gisapp.web import create_app  # registers every area, so that every route is documented
from gisapp.web.openapi import build_spec

# Examples per operation (FUZZ_EXAMPLES=200 for a longer hunt); derandomized, so a run repeats.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))


@pytest.fixture(scope="session")
def fuzz_server(server_url, demo_template):
    """The service on a copy of the demo world of its own, with an admin token."""
    url = copy_database(server_url, demo_template, "gisapp_test_fuzz")
    with db.connect(url) as conn:
        admin = create_user(conn, "fuzz-admin", "fuzz-password-1", "admin")
        token = create_token(conn, admin["id"], "fuzz")["token"]
        conn.commit()
    # the fuzzer logs in with random names from one address: it must not lock itself out
    app = create_app({"database_url": url, "secret_key": "fuzz-secret", "maintenance_interval_s": 0,
                      "live_coverage_interval_s": 0, "login_max_failures_per_address": 10**6})
    srv = LiveServer(app)
    yield {"url": srv.url, "headers": {"Authorization": f"Bearer {token}"}}
    srv.stop()
    db.close_pools()


# The document is static (built from the catalogue and the documented routes): load it at collection.
schema = schemathesis.openapi.from_dict(build_spec())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, fuzz_server):
    case.call_and_validate(base_url=fuzz_server["url"], headers=fuzz_server["headers"],
                           checks=[not_a_server_error, response_schema_conformance])


# Random examples rarely read real rows (their random filters and ids match nothing), so every read
# is also called once as a client would: no optional parameter, and id 1 for a path id.
READS = sorted(op.label for op in (r.ok() for r in schema.get_all_operations()) if op.method.upper() == "GET")


@pytest.mark.parametrize("label", READS)
def test_every_read_of_real_rows_answers_as_documented(label, fuzz_server):
    method, path = label.split(" ", 1)
    op = schema[path][method]
    case = op.Case(path_parameters={"id": 1} if "{id}" in path else None)
    case.call_and_validate(base_url=fuzz_server["url"], headers=fuzz_server["headers"],
                           checks=[not_a_server_error, response_schema_conformance])
