"""schemathesis hooks for the API fuzzing run (schemathesis.toml loads this file).

A real client never reuses an Idempotency-Key for a different request; the fuzzer would (it
likes short keys such as "0"), and the server rightly answers 422 idempotency-key-reused. So a
well-formed generated key gets a unique suffix: the request stays schema-valid, and a key the
fuzzer broke on purpose (negative data) is sent unchanged.
"""

import re
import uuid

import schemathesis

_VALID_KEY = re.compile(r"[!-~]{1,255}")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str) and _VALID_KEY.fullmatch(value):
            # At most 218 + 1 + 36 = 255 characters, the longest key the API accepts.
            headers[name] = f"{value[:218]}-{uuid.uuid4()}"
