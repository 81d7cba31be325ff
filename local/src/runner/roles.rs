//! The IAM phase of start-up (see [`crate::iam`]): whether IAM is enforced, the admin principal
//! the runner provisions with, and each function's role session.

use super::phases::{Services, ToRun};
use super::ACCOUNT_ID;
use crate::cli::Options;
use crate::iam::{self, Principal};
use crate::output::say;
use crate::template::Resolver;
use aws_config::SdkConfig;
use std::collections::BTreeMap;

/// Whether IAM is enforced this run; says which at start.
pub(super) fn enforced(options: &Options, services: &Services) -> bool {
    let (on, line) = if options.real_aws {
        (
            false,
            "IAM: real AWS checks your own credentials (--real-aws)",
        )
    } else if !options.iam {
        (
            false,
            "IAM: not enforced (--no-iam): every function calls moto as one principal allowed \
             everything",
        )
    } else if services.moto.is_none() {
        (
            false,
            "IAM: not enforced: AWS_ENDPOINT_URL names an emulator the runner did not start",
        )
    } else {
        (
            true,
            "IAM: enforced: each function runs under its template role and moto checks every \
             call's action (--no-iam turns this off)",
        )
    };
    say(line);
    on
}

/// The admin user the runner provisions with (created while moto checks nothing yet).
pub(super) async fn admin(unchecked: &SdkConfig, options: &Options) -> Result<Principal, String> {
    let admin = iam::create_admin(unchecked, &options.stack_name, ACCOUNT_ID)
        .await
        .map_err(|e| format!("IAM: the admin user: {e}"))?;
    say(format!("IAM: provisioning as {}", admin.arn));
    Ok(admin)
}

/// Creates each function's role from the expanded template, assumes it, then switches moto's
/// access control on. Returns the sessions by function binary.
pub(super) async fn function_sessions(
    options: &Options,
    to_run: &[ToRun],
    resolver: &Resolver<'_>,
    admin: &SdkConfig,
    endpoint: &str,
) -> Result<BTreeMap<String, Principal>, String> {
    let expanded = iam::expand(&options.root, &options.template, &resolver.region).await?;
    let functions: Vec<String> = to_run.iter().map(|(d, _)| d.logical_id.clone()).collect();
    let (sessions, lines) = iam::create_function_roles(
        admin,
        &expanded,
        &resolver.physical,
        (&resolver.region, ACCOUNT_ID, &options.stack_name),
        &functions,
    )
    .await
    .map_err(|e| format!("IAM: {e}"))?;
    for line in lines {
        say(format!("IAM: {line}"));
    }
    iam::enforce(endpoint).await?;
    say("IAM: moto's access control is on");
    Ok(to_run
        .iter()
        .filter_map(|(def, _)| {
            let session = sessions.get(&def.logical_id)?.clone();
            Some((def.binary.clone(), session))
        })
        .collect())
}
