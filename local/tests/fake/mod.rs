//! A Lambda function written against the documented Runtime API alone (a small Python
//! program, no Rust runtime crate), for testing the emulators. Like a Managed Instances
//! runtime, it polls with `AWS_LAMBDA_MAX_CONCURRENCY` threads when that is set.
#![allow(dead_code)]

use orders_local::runtime_api::{Function, FunctionSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FAKE: &str = r#"#!/usr/bin/env python3
import json, os, sys, threading, time, urllib.error, urllib.request
base = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
if os.environ.get("FAKE_MODE") == "exit-at-init":
    sys.exit(3)
def post(path, body, headers={}):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    urllib.request.urlopen(request).read()
lock = threading.Lock()
barriers = {}
def rendezvous(parties):
    # Returns once `parties` invocations are here at once: only concurrent invocations pass.
    with lock:
        barrier = barriers.setdefault(parties, threading.Barrier(parties))
    barrier.wait(timeout=120)
def serve():
    while True:
        with urllib.request.urlopen(base + "/invocation/next") as r:
            headers = {k.lower(): v for k, v in r.headers.items()}
            raw = r.read()
            event = json.loads(raw)
        rid = headers["lambda-runtime-aws-request-id"]
        if os.environ.get("FAKE_MODE") == "sqs-slow" and "Records" in event:
            # An SQS batch: hold it for FAKE_SECONDS, then note when it ran (system-wide clock).
            start = time.monotonic()
            time.sleep(float(os.environ.get("FAKE_SECONDS", "0.5")))
            line = json.dumps({"start": start, "end": time.monotonic(), "bytes": len(raw),
                               "bodies": [record["body"][:40] for record in event["Records"]]})
            with open(os.environ["FAKE_LOG"], "a") as log:
                log.write(line + "\n")
            post("/invocation/" + rid + "/response", {"batchItemFailures": []})
            continue
        action = event.get("action", "echo")
        if "rawPath" in event:
            # An API Gateway event: the path says what to do.
            action = {"/error": "error", "/crash": "exit", "/slow": "sleep", "/garbage": "garbage"}.get(event["rawPath"], "http")
            event["seconds"] = 600
        if action == "garbage":
            request = urllib.request.Request(base + "/invocation/" + rid + "/response", data=b"not json", method="POST")
            urllib.request.urlopen(request).read()
            continue
        if action == "big":
            # A response of exactly event["bytes"] bytes; Lambda answers 413 to one that is too large.
            pad = "x" * (event["bytes"] - len('{"pad": ""}'))
            try:
                post("/invocation/" + rid + "/response", {"pad": pad})
            except urllib.error.HTTPError as e:
                sys.stderr.write("response refused: %d\n" % e.code)
            continue
        if action == "http":
            post("/invocation/" + rid + "/response",
                 {"statusCode": 200, "headers": {"content-type": "application/json", "x-fake": "yes"},
                  "cookies": ["a=1", "b=2"], "body": json.dumps(event), "isBase64Encoded": False})
            continue
        if action == "sleep":
            time.sleep(event["seconds"])
        if action == "rendezvous":
            rendezvous(event["parties"])
        if action == "exit":
            os._exit(1)
        if action == "error":
            post("/invocation/" + rid + "/error", {"errorType": "Boom", "errorMessage": "it broke"},
                 {"Lambda-Runtime-Function-Error-Type": "Boom"})
            continue
        names = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                 "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION", "MY_SETTING", "HOME", "AWS_LAMBDA_MAX_CONCURRENCY"]
        post("/invocation/" + rid + "/response",
             {"event": event, "headers": headers, "pid": os.getpid(), "env": {n: os.environ.get(n) for n in names}})
n = int(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY") or "1")
for _ in range(n - 1):
    threading.Thread(target=serve, daemon=True).start()
serve()
"#;

pub struct Fake {
    dir: PathBuf,
}

impl Fake {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "orders-local-fake-{}-{}",
            std::process::id(),
            uuid()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join("bootstrap");
        std::fs::write(&program, FAKE).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    pub fn program(&self) -> PathBuf {
        self.dir.join("bootstrap")
    }

    pub fn function(&self, timeout: Duration, mode: &str) -> Function {
        Function::new(spec(&self.program(), timeout, mode))
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn uuid() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub fn spec(program: &Path, timeout: Duration, mode: &str) -> FunctionSpec {
    FunctionSpec {
        name: "fake".into(),
        function_name: "stack-fake".into(),
        program: program.to_path_buf(),
        env: vec![
            ("MY_SETTING".into(), "42".into()),
            ("FAKE_MODE".into(), mode.into()),
        ],
        timeout,
        init_timeout: Duration::from_secs(60),
        memory_mb: 256,
        region: "eu-west-1".into(),
        account_id: "123456789012".into(),
        show_output: true,
        report: true,
    }
}
