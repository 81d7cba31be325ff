//! The lists in `deployment` held true against the code and against `scripts/lint/functions.json`.

use super::*;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The adapters whose methods call the AWS SDK: file (under shared/src) and its client type.
const ADAPTERS: &[&str] = &["dynamodb.rs", "s3.rs", "sns.rs"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A source file without its `#[cfg(test)]` part (tests call nothing in production).
fn source(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Each adapter type's methods and the SDK operations each performs (with the methods of the
/// same type it calls).
fn adapter_operations() -> BTreeMap<(String, String), BTreeSet<String>> {
    let impl_re = Regex::new(r"(?m)^impl (\w+) \{").unwrap();
    let fn_re = Regex::new(r"(?m)^    (?:pub )?(?:async )?fn (\w+)").unwrap();
    let op_re = Regex::new(r"client\s*\.\s*(\w+)\(\)").unwrap();
    let self_re = Regex::new(r"self\s*\.\s*(\w+)\(").unwrap();
    let mut found = BTreeMap::new();
    for file in ADAPTERS {
        let text = source(&root().join("shared/src").join(file));
        // The client type is the one whose `impl` block calls the SDK client; other blocks
        // (error types, say) are skipped.
        let impls: Vec<_> = impl_re.captures_iter(&text).collect();
        let mut clients = 0;
        for (n, start) in impls.iter().enumerate() {
            let block_end = impls
                .get(n + 1)
                .map_or(text.len(), |next| next.get(0).unwrap().start());
            let block = &text[start.get(0).unwrap().start()..block_end];
            if !op_re.is_match(block) {
                continue;
            }
            clients += 1;
            let ty = start[1].to_string();
            let starts: Vec<_> = fn_re.captures_iter(block).collect();
            let mut own = BTreeMap::new();
            for (i, start) in starts.iter().enumerate() {
                let begin = start.get(0).unwrap().start();
                let end = starts
                    .get(i + 1)
                    .map_or(block.len(), |next| next.get(0).unwrap().start());
                let body = &block[begin..end];
                let ops: BTreeSet<String> = op_re
                    .captures_iter(body)
                    .map(|c| c[1].to_string())
                    .collect();
                let calls: BTreeSet<String> = self_re
                    .captures_iter(body)
                    .map(|c| c[1].to_string())
                    .collect();
                own.insert(start[1].to_string(), (ops, calls));
            }
            for method in own.keys() {
                let mut ops = BTreeSet::new();
                let mut todo = vec![method.clone()];
                let mut seen = BTreeSet::new();
                while let Some(m) = todo.pop() {
                    if !seen.insert(m.clone()) {
                        continue;
                    }
                    if let Some((own_ops, calls)) = own.get(&m) {
                        ops.extend(own_ops.iter().cloned());
                        todo.extend(calls.iter().cloned());
                    }
                }
                found.insert((ty.clone(), method.clone()), ops);
            }
        }
        assert_eq!(
            clients, 1,
            "{file}: expected one client type calling the SDK, found {clients}"
        );
    }
    found
}

/// The function crate's sources and the shared modules they reach (`orders::m`, `crate::m`).
fn function_sources(binary: &str) -> Vec<String> {
    let shared = root().join("shared/src");
    let mut files = rust_files(&root().join("functions").join(binary).join("src"));
    let module_re = Regex::new(r"\b(?:orders|crate)::(\w+)").unwrap();
    let mut modules = BTreeSet::new();
    let mut texts = Vec::new();
    while let Some(file) = files.pop() {
        let text = source(&file);
        for capture in module_re.captures_iter(&text) {
            let name = capture[1].to_string();
            if !modules.insert(name.clone()) {
                continue;
            }
            let single = shared.join(format!("{name}.rs"));
            if single.exists() {
                files.push(single);
            }
            let dir = shared.join(&name);
            if dir.is_dir() {
                files.extend(rust_files(&dir));
            }
        }
        texts.push(text);
    }
    texts
}

/// The SDK operations a function's code reaches: calls of adapter methods on values declared
/// with the adapter's type.
fn reached_operations(binary: &str) -> BTreeSet<String> {
    let operations = adapter_operations();
    let types: BTreeSet<&str> = operations.keys().map(|(t, _)| t.as_str()).collect();
    let texts = function_sources(binary);
    let mut receivers: BTreeMap<String, String> = BTreeMap::new();
    for ty in &types {
        // `name: Type`, `name: &Type`, `name: Arc<Type>`, `name: orders::x::Type`, ...
        let declared =
            Regex::new(&format!(r"(\w+)\s*:\s*&?(?:[\w:]+<)*&?(?:\w+::)*{ty}\b")).unwrap();
        for text in &texts {
            for capture in declared.captures_iter(text) {
                receivers.insert(capture[1].to_string(), ty.to_string());
            }
        }
    }
    let mut reached = BTreeSet::new();
    for (name, ty) in &receivers {
        let call = Regex::new(&format!(r"\b{name}\s*\.\s*(\w+)\s*\(")).unwrap();
        for text in &texts {
            for capture in call.captures_iter(text) {
                if let Some(ops) = operations.get(&(ty.clone(), capture[1].to_string())) {
                    reached.extend(ops.iter().cloned());
                }
            }
        }
    }
    reached
}

#[test]
fn each_sdk_call_a_function_makes_is_listed_and_each_listed_call_is_made() {
    for function in FUNCTIONS {
        let listed: BTreeSet<String> = function
            .calls
            .iter()
            .flat_map(|c| c.operations.iter().map(|o| o.to_string()))
            .collect();
        let reached = reached_operations(function.binary);
        let missing: Vec<_> = reached.difference(&listed).collect();
        let unused: Vec<_> = listed.difference(&reached).collect();
        assert!(
            missing.is_empty() && unused.is_empty(),
            "{}: the code calls {missing:?} which deployment::{} does not list, and the list \
             names {unused:?} which the code never calls",
            function.logical_id,
            function.binary.to_uppercase(),
        );
    }
}

#[test]
fn the_scan_sees_the_calls_it_must_see() {
    // Guards the scanner itself: if it stopped finding calls, the test above would pass
    // on empty sets.
    let ops = adapter_operations();
    let get = &ops[&("OrderViewStore".to_string(), "get".to_string())];
    assert!(get.contains("get_item"), "{get:?}");
    let publish = &ops[&("EventPublisher".to_string(), "publish".to_string())];
    assert!(publish.contains("publish"), "{publish:?}");
    assert!(reached_operations("query").contains("query"));
    assert!(!reached_operations("query").contains("put_item"));
    assert!(reached_operations("relay").contains("publish_batch"));
}

#[test]
fn each_action_is_the_one_its_sdk_operations_need() {
    let camel = |op: &str| -> String {
        op.split('_')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect()
    };
    for function in FUNCTIONS {
        for call in function.calls {
            let (service, _) = call.action.split_once(':').expect("service:Action");
            for op in call.operations {
                // PublishBatch is authorized as sns:Publish.
                let expected = match *op {
                    "publish_batch" => "sns:Publish".to_string(),
                    _ => format!("{service}:{}", camel(op)),
                };
                assert_eq!(call.action, expected, "{}: {op}", function.logical_id);
            }
        }
    }
}

#[test]
fn a_function_that_connects_to_postgres_lists_rds_db_connect() {
    let connect = Regex::new(r"orders::postgres::connect\(").unwrap();
    for function in FUNCTIONS {
        let connects = function_sources(function.binary)
            .iter()
            .any(|text| connect.is_match(text));
        assert_eq!(
            connects,
            function.calls.contains(&DB_CONNECT),
            "{}",
            function.logical_id
        );
        assert_eq!(
            connects,
            function.vars.names().contains(&vars::DB_HOST),
            "{}",
            function.logical_id
        );
    }
    let iam = source(&root().join("shared/src/postgres/iam.rs"));
    assert!(
        iam.contains("rds-db"),
        "the IAM token is for rds-db:connect"
    );
}

#[test]
fn resource_names_match_the_code() {
    let dynamodb = source(&root().join("shared/src/dynamodb.rs"));
    assert!(dynamodb.contains(&format!("CUSTOMER_INDEX: &str = \"{CUSTOMER_INDEX}\"")));
    let id = crate::OrderId::new();
    for key in [
        crate::domain::receipt::receipt_key(id),
        crate::domain::receipt::cancellation_key(id),
    ] {
        assert!(key.starts_with(RECEIPTS_PREFIX), "{key}");
    }
    for function in FUNCTIONS {
        let manifest = root()
            .join("functions")
            .join(function.binary)
            .join("Cargo.toml");
        assert!(manifest.exists(), "{}", manifest.display());
    }
}

#[test]
fn each_call_names_variables_the_function_reads() {
    for function in FUNCTIONS {
        let names = function.vars.names();
        for call in function.calls {
            let vars: Vec<&str> = match call.resource {
                Resource::Table { table } => vec![table],
                Resource::Index { table, .. } => vec![table],
                Resource::Objects { bucket, .. } => vec![bucket],
                Resource::Topic { topic } => vec![topic],
                Resource::DbUser { host, port, user } => vec![host, port, user],
            };
            for var in vars.into_iter().chain(call.when.map(|w| w.var)) {
                assert!(names.contains(&var), "{}: {var}", function.logical_id);
            }
        }
    }
}

#[test]
fn the_manifest_file_is_current() {
    let path = root().join("scripts/lint/functions.json");
    let want = serde_json::to_string_pretty(&manifest()).unwrap() + "\n";
    if std::env::var_os("UPDATE_MANIFEST").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: run UPDATE_MANIFEST=1 cargo test -p orders --lib deployment",
        path.display()
    );
}
