//! What each function needs from its deployment: the environment variables it reads and the
//! AWS actions its code performs, each on the resource a variable names.
//!
//! `scripts/lint-template` checks every function's IAM role, VPC endpoints, routes and security
//! groups in the expanded template against these lists. It reads them from
//! `scripts/lint/functions.json`, which [`manifest`] writes and a test keeps equal; another test
//! scans the adapters' SDK calls so that a call missing from a list (or listed but never made)
//! fails the suite.

use crate::config::vars::{self, FunctionVars};
use serde::Serialize;

/// The resource an action is performed on, found through the function's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Resource {
    /// The DynamoDB table whose name is in `table`.
    Table { table: &'static str },
    /// A global secondary index of that table.
    Index {
        table: &'static str,
        index: &'static str,
    },
    /// The objects under `prefix` in the S3 bucket whose name is in `bucket`.
    Objects {
        bucket: &'static str,
        prefix: &'static str,
    },
    /// The SNS topic whose ARN is in `topic`.
    Topic { topic: &'static str },
    /// The database user in `user` at the RDS Proxy whose endpoint is in `host` (port in
    /// `port`): `rds-db:connect` on `dbuser:<proxy id>/<user>`, and a TCP path to the proxy.
    DbUser {
        host: &'static str,
        port: &'static str,
        user: &'static str,
    },
}

/// Holds only while a variable has a given value (e.g. `DB_AUTH=iam`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct When {
    pub var: &'static str,
    pub equals: &'static str,
}

/// One action a function's code performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// The IAM action, e.g. `dynamodb:GetItem`.
    pub action: &'static str,
    pub resource: Resource,
    /// The Rust SDK operations that need it (client method names); empty when no SDK call is
    /// made (an IAM database token is signed locally, then presented to the proxy).
    pub operations: &'static [&'static str],
    pub when: Option<When>,
}

/// A deployed function: its logical id in `template.yaml`, its binary, variables and calls.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    pub logical_id: &'static str,
    pub binary: &'static str,
    pub vars: FunctionVars,
    pub calls: &'static [Call],
    /// A CloudFormation custom resource handler: it PUTs its answer to a pre-signed S3 URL,
    /// so it needs a path to S3 even without an S3 grant.
    pub answers_cloudformation: bool,
}

/// The index the query function lists a customer's orders with (`dynamodb::CUSTOMER_INDEX`).
pub const CUSTOMER_INDEX: &str = "byCustomer";
/// Where receipts live in the bucket (`domain::receipt`).
pub const RECEIPTS_PREFIX: &str = "receipts/";

const ORDERS_TABLE: Resource = Resource::Table {
    table: vars::ORDERS_TABLE,
};
const RECEIPTS: Resource = Resource::Objects {
    bucket: vars::RECEIPTS_BUCKET,
    prefix: RECEIPTS_PREFIX,
};
const ORDER_EVENTS: Resource = Resource::Topic {
    topic: vars::ORDER_EVENTS_TOPIC_ARN,
};

/// `rds-db:connect` as the configured user, with `DB_AUTH=iam` (each new connection signs a
/// token with the function's credentials).
pub const DB_CONNECT: Call = Call {
    action: "rds-db:connect",
    resource: Resource::DbUser {
        host: vars::DB_HOST,
        port: vars::DB_PORT,
        user: vars::DB_USER,
    },
    operations: &[],
    when: Some(When {
        var: vars::DB_AUTH,
        equals: "iam",
    }),
};

pub const COMMAND: Function = Function {
    logical_id: "CommandFunction",
    binary: "command",
    vars: vars::COMMAND,
    calls: &[
        DB_CONNECT,
        Call {
            action: "sns:Publish",
            resource: ORDER_EVENTS,
            operations: &["publish"],
            when: None,
        },
    ],
    answers_cloudformation: false,
};

pub const RELAY: Function = Function {
    logical_id: "RelayFunction",
    binary: "relay",
    vars: vars::RELAY,
    calls: &[
        DB_CONNECT,
        Call {
            // PublishBatch is authorized as sns:Publish; Publish sends the read-model heartbeat.
            action: "sns:Publish",
            resource: ORDER_EVENTS,
            operations: &["publish_batch", "publish"],
            when: None,
        },
    ],
    answers_cloudformation: false,
};

pub const MIGRATE: Function = Function {
    logical_id: "MigrateFunction",
    binary: "migrate",
    vars: vars::MIGRATE,
    calls: &[DB_CONNECT],
    answers_cloudformation: true,
};

pub const QUERY: Function = Function {
    logical_id: "QueryFunction",
    binary: "query",
    vars: vars::QUERY,
    calls: &[
        Call {
            action: "dynamodb:GetItem",
            resource: ORDERS_TABLE,
            operations: &["get_item"],
            when: None,
        },
        Call {
            action: "dynamodb:Query",
            resource: Resource::Index {
                table: vars::ORDERS_TABLE,
                index: CUSTOMER_INDEX,
            },
            operations: &["query"],
            when: None,
        },
        Call {
            // Receipt links are pre-signed with the function's credentials: whoever follows
            // one is authorized as the function's role.
            action: "s3:GetObject",
            resource: RECEIPTS,
            operations: &["get_object"],
            when: None,
        },
    ],
    answers_cloudformation: false,
};

pub const UPDATER: Function = Function {
    logical_id: "UpdaterFunction",
    binary: "updater",
    vars: vars::UPDATER,
    calls: &[
        Call {
            action: "dynamodb:PutItem",
            resource: ORDERS_TABLE,
            operations: &["put_item"],
            when: None,
        },
        Call {
            action: "s3:PutObject",
            resource: RECEIPTS,
            operations: &["put_object"],
            when: None,
        },
    ],
    answers_cloudformation: false,
};

/// Every deployed function.
pub const FUNCTIONS: &[Function] = &[COMMAND, QUERY, UPDATER, RELAY, MIGRATE];

/// The lists as JSON, for `scripts/lint/functions.json` (and any tool that is not Rust).
pub fn manifest() -> serde_json::Value {
    let functions: serde_json::Map<String, serde_json::Value> = FUNCTIONS
        .iter()
        .map(|f| {
            let value = serde_json::json!({
                "binary": f.binary,
                "vars": f.vars.names(),
                "required": f.vars.required,
                "calls": f.calls,
                "answersCloudFormation": f.answers_cloudformation,
            });
            (f.logical_id.to_string(), value)
        })
        .collect();
    serde_json::json!({
        "generatedBy": "cargo test -p orders --lib deployment (UPDATE_MANIFEST=1 rewrites it)",
        "groups": {
            "DB_CONNECTION": vars::DB_CONNECTION,
            "DB_POOL": vars::DB_POOL,
            "PUBLISH": vars::PUBLISH,
            "AUTH": vars::AUTH,
            "READ_MODEL": vars::READ_MODEL,
            "COMMON": vars::COMMON,
        },
        "functions": functions,
    })
}

#[cfg(test)]
mod tests;
