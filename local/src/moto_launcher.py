"""Starts moto's server with two fixes to its access control (IAM enforcement).

1. Form-encoded bodies (query protocol: SNS, IAM, STS). moto re-encodes the body with `+` for
   spaces before checking its signature, while the AWS SDKs sign it percent-encoded (RFC 3986),
   so any message with a space failed with SignatureDoesNotMatch. It is re-encoded as the SDKs do.
2. Presigned S3 URLs (query-string authentication, the receipt links). moto reads the signer only
   from the Authorization header and answers a presigned GET with a 500. The signer's access key
   and session token are taken from the query string instead, and the action is checked against
   that principal's policies as for any call; the query-string signature itself is not verified
   (docs/LOCAL.md, IAM).
"""

import sys
from collections.abc import Mapping
from urllib.parse import parse_qs, quote, urlparse

from moto.iam import access_control
from moto.server import main

original_create_aws_request = access_control.IAMRequestBase._create_aws_request


def _create_aws_request(self):
    if not self._body and isinstance(self._data, Mapping):
        pairs = []
        for key, values in self._data.items():
            for value in values if isinstance(values, list) else [values]:
                pairs.append(quote(str(key), safe="-_.~") + "=" + quote(str(value), safe="-_.~"))
        self._body = "&".join(pairs).encode()
    return original_create_aws_request(self)


access_control.IAMRequestBase._create_aws_request = _create_aws_request

original_s3_init = access_control.S3IAMRequest.__init__


def _s3_init(self, account_id, method, path, data, body, headers, action):
    query = parse_qs(urlparse(path).query)
    self._presigned = "Authorization" not in headers and "X-Amz-Credential" in query
    if self._presigned:
        first = lambda name: query.get(name, [""])[0]  # noqa: E731
        headers = {key: value for key, value in headers.items()}
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={first('X-Amz-Credential')}, "
            f"SignedHeaders={first('X-Amz-SignedHeaders')}, Signature={first('X-Amz-Signature')}"
        )
        if first("X-Amz-Security-Token"):
            headers["X-Amz-Security-Token"] = first("X-Amz-Security-Token")
    original_s3_init(self, account_id, method, path, data, body, headers, action)


original_s3_check_signature = access_control.S3IAMRequest.check_signature


def _s3_check_signature(self):
    if not getattr(self, "_presigned", False):
        original_s3_check_signature(self)


access_control.S3IAMRequest.__init__ = _s3_init
access_control.S3IAMRequest.check_signature = _s3_check_signature
main(sys.argv[1:])
