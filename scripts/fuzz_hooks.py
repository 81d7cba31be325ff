"""schemathesis hooks for the API fuzzing run (schemathesis.toml loads this file).

A real client never reuses an Idempotency-Key for a different request; the fuzzer would (it
likes short keys such as "0"), and the server rightly answers 422 idempotency-key-reused. So a
well-formed generated key gets a unique suffix: the request stays schema-valid, and a key the
fuzzer broke on purpose (negative data) is sent unchanged.

With a customer token the fuzzer would place every order for a customer id it made up (403), so
no order of the token's customer would exist and the links would only ever reach 404s. When
ORDERS_FUZZ_CUSTOMER names the token's customer, a schema-valid `POST /orders` body is placed for
that customer: the stateful phase then walks the customer's own orders and listing (and meets
the staff-only status change on them), while generated listings of other customer ids still get
their 403s.
"""

import os
import re
import uuid

import schemathesis

_VALID_KEY = re.compile(r"[!-~]{1,255}")


def _own_customer(case):
    customer = os.environ.get("ORDERS_FUZZ_CUSTOMER")
    if not customer or case.method.upper() != "POST" or case.operation.path != "/orders":
        return
    meta = case.meta
    if meta is None or meta.generation.mode.is_negative:
        return
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("customer"), dict):
        body["customer"]["id"] = customer


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    _own_customer(case)
    headers = case.headers or {}
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str) and _VALID_KEY.fullmatch(value):
            # At most 218 + 1 + 36 = 255 characters, the longest key the API accepts.
            headers[name] = f"{value[:218]}-{uuid.uuid4()}"
