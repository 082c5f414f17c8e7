"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis), over HTTP.

Every operation, with inputs generated from the schema: never a 5xx; without a token every
``/v1`` operation is a 401, whatever the input (no auth bypass through validation order).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok

from tests.llm_server import ThreadServer
from tests.test_service_api import AUTH, Service

pytestmark = pytest.mark.timeout(600)
NO_TOKEN = {"Authorization": ""}


@pytest.fixture(scope="module")
def fuzzed(graph: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with ThreadServer() as llm:
        data = tmp_path_factory.mktemp("fuzz") / "data"
        svc = Service(graph, data, llm, "--max-n", "3", "--max-pending", "8")
        yield svc
        svc.stop()


def test_no_server_error_and_no_auth_bypass(fuzzed: Service) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the schema itself is valid OpenAPI
        operations.append(result.ok())
    assert {op.path for op in operations} >= {"/v1/generations", "/v1/kg/queries/{name}"}
    for operation in operations:
        inputs = list(operation.iter_parameters()) or list(operation.body)
        modes = [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if inputs else [])]
        for mode in modes:

            @given(case=operation.as_strategy(mode))
            @settings(
                max_examples=20,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Case) -> None:
                answer = case.call(base_url=fuzzed.url, headers=AUTH, timeout=30)
                assert answer.status_code < 500, (case.method, case.path, answer.text)
                if case.path.startswith("/v1"):
                    anonymous = case.call(base_url=fuzzed.url, headers=NO_TOKEN, timeout=30)
                    assert anonymous.status_code == 401, (case.path, anonymous.text)

            check()
