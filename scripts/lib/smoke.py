"""The smoke test behind scripts/smoke: one order through a running system, as a client sees it.

Against a deployed stack (--stack NAME) or the local runner (--local). Prints one line per step
with its time and exits non-zero at the first failure, saying what failed.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CUSTOMER_LINES = [{"sku": "SMOKE-01", "name": "Smoke test item", "quantity": 2, "unitPrice": 1250}]


class StepFailed(Exception):
    pass


def step(name, action, detail=None):
    """Runs one step, prints `ok`/`FAIL`, its time and `detail(result)`; returns the result."""
    started = time.monotonic()
    try:
        result = action()
    except StepFailed as error:
        print(f"FAIL {name} ({(time.monotonic() - started) * 1000:.0f} ms): {error}", flush=True)
        raise
    except Exception as error:  # an SDK or network error is a failed step, reported as such
        print(f"FAIL {name} ({(time.monotonic() - started) * 1000:.0f} ms): "
              f"{type(error).__name__}: {error}", flush=True)
        raise StepFailed(name) from error
    suffix = f": {detail(result)}" if detail else ""
    print(f"ok   {name} ({(time.monotonic() - started) * 1000:.0f} ms){suffix}", flush=True)
    return result


def http(method, url, token=None, body=None, headers=None):
    """(status, headers, parsed JSON or text) of one request."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("content-type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw, head = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, head = error.code, error.read(), dict(error.headers)
    text = raw.decode("utf-8", "replace")
    try:
        return status, head, json.loads(text)
    except ValueError:
        return status, head, text


def expect(status, wanted, body, what):
    if status != wanted:
        raise StepFailed(f"{what}: expected {wanted}, got {status}: {body}")


# -- Cognito ----------------------------------------------------------------------------------
# The 3072-bit group of RFC 3526 (section 4), which Cognito's SRP uses, with generator 2.
SRP_N = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
SRP_G = 2


def _pad_hex(value):
    text = value if isinstance(value, str) else format(value, "x")
    if len(text) % 2:
        text = "0" + text
    elif text[0] in "89abcdefABCDEF":
        text = "00" + text
    return text


def _hash_hex(hex_text):
    return hashlib.sha256(bytes.fromhex(hex_text)).hexdigest().rjust(64, "0")


def _hkdf16(ikm, salt):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, b"Caldera Derived Key\x01", hashlib.sha256).digest()[:16]


def srp_x(salt_hex, pool_name, user_id, password):
    """The private value derived from the password (SRP-6a x, as Cognito salts it)."""
    inner = hashlib.sha256(f"{pool_name}{user_id}:{password}".encode()).hexdigest()
    return int(_hash_hex(_pad_hex(salt_hex) + inner), 16)


def srp_session_key(a, big_b, salt_hex, pool_name, user_id, password):
    """The 16-byte key both sides derive: S = (B - k g^x)^(a + u x), then HKDF."""
    big_a = pow(SRP_G, a, SRP_N)
    k = int(_hash_hex(_pad_hex(SRP_N) + _pad_hex(SRP_G)), 16)
    u = int(_hash_hex(_pad_hex(big_a) + _pad_hex(big_b)), 16)
    x = srp_x(salt_hex, pool_name, user_id, password)
    s = pow((big_b - k * pow(SRP_G, x, SRP_N)) % SRP_N, a + u * x, SRP_N)
    return _hkdf16(bytes.fromhex(_pad_hex(s)), bytes.fromhex(_pad_hex(u)))


def cognito_customer_token(idp, pool_id, client_id, username, password):
    """An access token for a user of a client that allows USER_SRP_AUTH (SRP, RFC 5054 style)."""
    a = secrets.randbits(256) % SRP_N
    big_a = pow(SRP_G, a, SRP_N)
    challenge = idp.initiate_auth(
        AuthFlow="USER_SRP_AUTH",
        ClientId=client_id,
        AuthParameters={"USERNAME": username, "SRP_A": format(big_a, "x")},
    )
    if challenge.get("ChallengeName") != "PASSWORD_VERIFIER":
        raise StepFailed(f"unexpected challenge {challenge.get('ChallengeName')}")
    params = challenge["ChallengeParameters"]
    user_id = params["USER_ID_FOR_SRP"]
    pool_name = pool_id.split("_", 1)[1]
    key = srp_session_key(a, int(params["SRP_B"], 16), params["SALT"], pool_name, user_id, password)
    now = datetime.datetime.now(datetime.timezone.utc)
    timestamp = f"{now:%a %b} {now.day} {now:%H:%M:%S} UTC {now:%Y}"
    message = pool_name.encode() + user_id.encode() + base64.b64decode(params["SECRET_BLOCK"]) + timestamp.encode()
    signature = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    answer = idp.respond_to_auth_challenge(
        ClientId=client_id,
        ChallengeName="PASSWORD_VERIFIER",
        **({"Session": challenge["Session"]} if challenge.get("Session") else {}),
        ChallengeResponses={
            "USERNAME": user_id,
            "PASSWORD_CLAIM_SECRET_BLOCK": params["SECRET_BLOCK"],
            "PASSWORD_CLAIM_SIGNATURE": signature,
            "TIMESTAMP": timestamp,
        },
    )
    return answer["AuthenticationResult"]["AccessToken"]


# -- the two targets ----------------------------------------------------------------------------
class Stack:
    """A deployed stack: its outputs, its Cognito pool, its DLQ."""

    def __init__(self, name, region):
        import boto3

        self.session = boto3.session.Session(region_name=region)
        self.name = name

    def prepare(self):
        stacks = self.session.client("cloudformation").describe_stacks(StackName=self.name)
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0].get("Outputs", [])}
        for key in ("ApiUrl", "OrderEventsDeadLetterQueueUrl", "OrdersTableName", "ReceiptsBucketName"):
            if key not in self.outputs:
                raise StepFailed(f"stack {self.name} has no output {key}")
        self.base = self.outputs["ApiUrl"].rstrip("/")
        return self.base

    def staff_token(self):
        for key in ("UserPoolId", "StaffAppClientId", "TokenEndpoint"):
            if key not in self.outputs:
                raise StepFailed(f"stack output {key} missing (JwtIssuer set? pass tokens of your issuer)")
        idp = self.session.client("cognito-idp")
        client = idp.describe_user_pool_client(
            UserPoolId=self.outputs["UserPoolId"], ClientId=self.outputs["StaffAppClientId"]
        )["UserPoolClient"]
        basic = base64.b64encode(f"{client['ClientId']}:{client['ClientSecret']}".encode()).decode()
        request = urllib.request.Request(
            self.outputs["TokenEndpoint"],
            data=b"grant_type=client_credentials&scope=orders%2Fadmin",
            headers={"authorization": f"Basic {basic}",
                     "content-type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def customer_token(self):
        """A throw-away customer in the stack's pool (deleted at the end); its sub is its id."""
        idp = self.session.client("cognito-idp")
        pool = self.outputs["UserPoolId"]
        self.username = f"smoke-{uuid.uuid4().hex[:12]}@example.com"
        password = "Sm0ke-" + secrets.token_urlsafe(18)
        idp.admin_create_user(UserPoolId=pool, Username=self.username, MessageAction="SUPPRESS",
                              UserAttributes=[{"Name": "email", "Value": self.username},
                                              {"Name": "email_verified", "Value": "true"}])
        idp.admin_set_user_password(UserPoolId=pool, Username=self.username, Password=password,
                                    Permanent=True)
        user = idp.admin_get_user(UserPoolId=pool, Username=self.username)
        customer = next(a["Value"] for a in user["UserAttributes"] if a["Name"] == "sub")
        token = cognito_customer_token(idp, pool, self.outputs["CustomerAppClientId"],
                                       self.username, password)
        return token, customer

    def cleanup(self):
        if getattr(self, "username", None):
            self.session.client("cognito-idp").admin_delete_user(
                UserPoolId=self.outputs["UserPoolId"], Username=self.username)

    def sqs(self):
        return self.session.client("sqs")

    def dlq_url(self):
        return self.outputs["OrderEventsDeadLetterQueueUrl"]

    def admin_env(self):
        """orders-admin needs the database, which is private to the stack's VPC: DB_HOST (and
        DB_PORT) must reach the proxy, e.g. through an SSM port forward (docs/DEPLOY.md)."""
        if not os.environ.get("DB_HOST"):
            raise StepFailed(
                "orders-admin verify needs the database: set DB_HOST/DB_PORT to a tunnel to the "
                f"DbProxyEndpoint output ({self.outputs.get('DbProxyEndpoint')}) with DB_AUTH=iam "
                "and credentials allowed by the DbConnectPolicyArn output"
            )
        env = dict(os.environ)
        env.update(ORDERS_TABLE=self.outputs["OrdersTableName"],
                   RECEIPTS_BUCKET=self.outputs["ReceiptsBucketName"],
                   AWS_REGION=self.session.region_name)
        return env


class Local:
    """scripts/run-local: tokens from scripts/mint-token, AWS settings from its state directory."""

    def __init__(self, base, state_dir):
        self.base = base.rstrip("/")
        self.state_dir = os.path.abspath(state_dir)

    def prepare(self):
        path = os.path.join(self.state_dir, "cargo-lambda.env")
        if not os.path.exists(path):
            raise StepFailed(f"{path} does not exist: is scripts/run-local running with this --state-dir?")
        self.env = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                name, sep, value = line.rstrip("\n").partition("=")
                if sep:
                    self.env[name] = value
        status, _, body = http("GET", f"{self.base}/health")
        expect(status, 200, body, "GET /health")
        return self.base

    def mint(self, *args):
        out = subprocess.run([os.path.join(ROOT, "scripts/mint-token"), *args, "--state-dir", self.state_dir],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def staff_token(self):
        return self.mint("--staff")

    def customer_token(self):
        customer = f"cust-smoke-{uuid.uuid4().hex[:8]}"
        return self.mint("--customer", customer), customer

    def cleanup(self):
        pass

    def sqs(self):
        import boto3

        return boto3.client("sqs", endpoint_url=self.env.get("AWS_ENDPOINT_URL"),
                            region_name=self.env.get("AWS_REGION", "us-east-1"),
                            aws_access_key_id=self.env.get("AWS_ACCESS_KEY_ID", "local"),
                            aws_secret_access_key=self.env.get("AWS_SECRET_ACCESS_KEY", "local"))

    def dlq_url(self):
        """The queue another queue's redrive policy sends to (the template's DLQ)."""
        sqs = self.sqs()
        for url in sqs.list_queues().get("QueueUrls", []):
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
            policy = attributes.get("Attributes", {}).get("RedrivePolicy")
            if policy:
                target = json.loads(policy)["deadLetterTargetArn"].rsplit(":", 1)[1]
                return sqs.get_queue_url(QueueName=target)["QueueUrl"]
        raise StepFailed("no queue with a redrive policy, so no dead-letter queue to check")

    def admin_env(self):
        env = dict(os.environ)
        env.update(self.env)
        return env


# -- the client's walk --------------------------------------------------------------------------
def smoke(target, timeout):
    step("stack outputs and endpoints", target.prepare, lambda base: base)
    staff = step("staff token", target.staff_token, lambda _: "orders/admin")
    customer_token, customer = step("customer token", target.customer_token, lambda r: r[1])
    base = target.base

    def place():
        body = {"customer": {"id": customer, "name": "Smoke Test", "email": "smoke@example.com"},
                "currency": "EUR", "lines": CUSTOMER_LINES}
        status, _, created = http("POST", f"{base}/orders", customer_token, body,
                                  {"idempotency-key": str(uuid.uuid4())})
        expect(status, 201, created, "POST /orders")
        return created

    created = step("place an order", place, lambda c: c["orderId"])
    order_id = created["orderId"]

    def wait_for(version, what):
        deadline = time.monotonic() + timeout
        while True:
            status, _, view = http("GET", f"{base}/orders/{order_id}", customer_token)
            if status == 200 and view.get("version", 0) >= version:
                return view
            if status not in (200, 404) or time.monotonic() > deadline:
                raise StepFailed(f"{what}: GET /orders/{order_id} is {status} {view} after {timeout} s")
            time.sleep(0.5)

    described = lambda v: f"version {v['version']} {v['status']}"  # noqa: E731
    step("order readable", lambda: wait_for(created["version"], "the order never became readable"), described)

    def listed():
        status, _, page = http("GET", f"{base}/customers/{customer}/orders", customer_token)
        expect(status, 200, page, "GET /customers/{id}/orders")
        ids = [item["orderId"] for item in page.get("items", [])]
        if order_id not in ids:
            raise StepFailed(f"{order_id} is not in the customer's orders {ids}")
        return ids

    step("list the customer's orders", listed, lambda ids: f"{len(ids)} order(s)")

    def change(to, version, token):
        status, _, changed = http("POST", f"{base}/orders/{order_id}/status", token,
                                  {"status": to, "reason": "smoke test"},
                                  {"if-match": f'"{version}"', "idempotency-key": str(uuid.uuid4())})
        expect(status, 200, changed, f"POST /orders/{{id}}/status {to}")
        return changed

    confirmed = step("confirm (staff)", lambda: change("CONFIRMED", created["version"], staff), described)
    cancelled = step("cancel (customer)", lambda: change("CANCELLED", confirmed["version"], customer_token), described)
    view = step("cancellation readable", lambda: wait_for(cancelled["version"], "the cancellation never arrived"), described)

    def receipt():
        for field in ("receiptUrl", "cancellationUrl"):
            url = view.get(field)
            if not url:
                raise StepFailed(f"the order view has no {field}: {view}")
            status, _, text = http("GET", url)
            expect(status, 200, str(text)[:200], f"GET {field}")
        return 2

    step("read the receipt links", receipt, lambda n: f"{n} documents")

    def dlq_empty():
        sqs = target.sqs()
        url = target.dlq_url()
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        count = sum(int(v) for v in attributes.values())
        if count:
            raise StepFailed(f"{count} message(s) in {url}")
        return url.rsplit("/", 1)[1]

    step("dead-letter queue empty", dlq_empty, lambda name: name)

    def verify():
        admin = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "orders-admin")
        if not os.path.exists(admin):
            subprocess.run(["cargo", "build", "-q", "-p", "orders-admin"], cwd=ROOT, check=True)
        out = subprocess.run([admin, "verify"], env=target.admin_env(), capture_output=True, text=True)
        if out.returncode != 0:
            raise StepFailed(f"orders-admin verify exited {out.returncode}:\n{out.stdout}{out.stderr}")
        return (out.stdout.strip().splitlines() or ["clean"])[-1]

    step("orders-admin verify", verify, lambda last: last)


def main():
    parser = argparse.ArgumentParser(prog="scripts/smoke", description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", metavar="NAME", help="a deployed stack (AWS credentials from the environment)")
    where.add_argument("--local", action="store_true", help="a running scripts/run-local")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION"))
    parser.add_argument("--base-url", default="http://127.0.0.1:3000", help="--local: the runner's API")
    parser.add_argument("--state-dir", default=os.environ.get("LOCAL_STATE_DIR", os.path.join(ROOT, ".local")),
                        help="--local: the runner's state directory")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the read model")
    args = parser.parse_args()
    target = Stack(args.stack, args.region) if args.stack else Local(args.base_url, args.state_dir)
    started = time.monotonic()
    try:
        smoke(target, args.timeout)
    except StepFailed:
        print(f"smoke: FAILED after {time.monotonic() - started:.1f} s", flush=True)
        return 1
    finally:
        try:
            target.cleanup()
        except Exception as error:  # cleanup problems are reported, not hidden
            print(f"smoke: cleanup failed: {error}", flush=True)
    print(f"smoke: OK in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
