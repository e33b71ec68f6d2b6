"""Schemathesis fuzzes the JSON API from its own OpenAPI document, against the real server process.

Every generated request must get an answer the document allows (status, content type, body schema),
and never a 500; WeChat here is the stand-in, which refuses the random codes as WeChat would (40029).
Schemathesis' hypothesis strategies are driven directly (its pytest plugin does not load under our
pytest), one operation at a time.
"""

from __future__ import annotations

import asyncio

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings

from harness import scale
from harness.figures import FIGURES, count_response


async def test_api_answers_every_generated_request_as_documented(wx_server):
    # Schemathesis calls are blocking; run them in a thread so the stand-in on this loop keeps answering.
    await asyncio.to_thread(_fuzz_every_operation, wx_server.url)


def _fuzz_every_operation(base_url: str) -> None:
    document = httpx.get(f"{base_url}/api/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    failures: list[str] = []

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=scale(25, 300), deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def fuzz(case) -> None:
            response = case.call(base_url=base_url, timeout=15)
            count_response(response.status_code, documented=())
            FIGURES.bad_inputs_tried += 1
            assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:200])
            case.validate_response(response, excluded_checks=[schemathesis.checks.positive_data_acceptance])

        try:
            fuzz()
        except Exception as exc:  # collect every operation's first failure, then report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:1500])
    assert not failures, "\n\n".join(failures)
