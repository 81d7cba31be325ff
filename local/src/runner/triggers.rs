//! What invokes the functions locally, as the template declares it: the SQS event source
//! mappings (and the re-projection of the read model through the first one), the HTTP API's
//! routes with their authorizers, and the schedules.

use super::phases::{function_of, ToRun};
use super::{Stack, ACCOUNT_ID};
use crate::auth::Verifier;
use crate::cli::Options;
use crate::http_api::{Route, RouteAuthorizer};
use crate::iam::Principal;
use crate::output::{say, warn};
use crate::provision::{Provisioned, Queue};
use crate::reproject;
use crate::runtime_api::Function;
use crate::schedule::{self, Schedule};
use crate::sqs_source::SqsSource;
use crate::template::{FunctionDef, RouteAuth};
use aws_config::SdkConfig;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The SQS event source mappings, with the queues they poll.
pub(super) fn event_sources(
    options: &Options,
    to_run: &[ToRun],
    functions: &[Function],
    provisioned: &Provisioned,
    region: &str,
) -> Vec<(SqsSource, Queue)> {
    let mut sources = Vec::new();
    for (def, _) in to_run {
        let function = function_of(functions, def);
        for mapping in &def.sqs {
            if options.real_aws {
                say(format!(
                    "{}: not polling {} with --real-aws (the deployed function consumes it)",
                    def.logical_id, mapping.queue
                ));
                continue;
            }
            let Some(queue) = provisioned.queues.get(&mapping.queue) else {
                warn(format!(
                    "{}: queue {} was not created; mapping skipped",
                    def.logical_id, mapping.queue
                ));
                continue;
            };
            sources.push((
                SqsSource {
                    name: queue.name.clone(),
                    function: function.clone(),
                    queue_url: queue.url.clone(),
                    queue_arn: queue.arn.clone(),
                    region: region.to_string(),
                    batch_size: mapping.batch_size,
                    batching_window: mapping.batching_window,
                    report_batch_item_failures: mapping.report_batch_item_failures,
                    max_concurrency: mapping
                        .max_concurrency
                        .unwrap_or(usize::MAX)
                        .min(function.concurrency()),
                },
                queue.clone(),
            ));
        }
    }
    sources
}

/// How many execution environments a function may run at once: `--concurrency`, raised to
/// what its event source mappings invoke at once (`ScalingConfig.MaximumConcurrency`), and
/// never over its `ReservedConcurrentExecutions`.
pub(super) fn environments(options: &Options, def: &FunctionDef) -> usize {
    let mappings: usize = def.sqs.iter().filter_map(|m| m.max_concurrency).sum();
    let wanted = options.concurrency.max(mappings);
    def.reserved_concurrency.map_or(wanted, |r| wanted.min(r))
}

/// The read model, from the outbox, through the first queue's function.
pub(super) async fn reproject_read_model(
    pool: &deadpool_postgres::Pool,
    sources: &[(SqsSource, Queue)],
    region: &str,
) -> Result<(), String> {
    let Some((source, _)) = sources.first() else {
        return Ok(());
    };
    let summary = reproject::reproject(
        pool,
        &reproject::Target {
            function: &source.function,
            queue_arn: &source.queue_arn,
            region,
            batch_size: source.batch_size.max(1) as usize,
        },
    )
    .await
    .map_err(|e| format!("re-projection: {e}"))?;
    if summary.orders > 0 {
        say(format!(
            "read model: re-projected {} order(s) from the outbox through {}{}",
            summary.orders,
            source.function.name(),
            if summary.failed > 0 {
                format!(" ({} failed; see the log above)", summary.failed)
            } else {
                String::new()
            }
        ));
    }
    Ok(())
}

/// The HTTP API's routes, with their authorizers.
pub(super) fn routes(
    to_run: &[ToRun],
    functions: &[Function],
    verifier: &Option<Arc<Verifier>>,
) -> Vec<Route> {
    let mut routes = Vec::new();
    for (def, _) in to_run {
        let function = function_of(functions, def);
        for route in &def.routes {
            if route.payload_format != "2.0" {
                warn(format!(
                    "{}: event {} uses payload format {}; only 2.0 is emulated",
                    def.logical_id, route.event, route.payload_format
                ));
                continue;
            }
            let mut local = Route::new(&route.method, route.path.as_deref(), function.clone());
            match (&route.auth, verifier) {
                (RouteAuth::Jwt { authorizer, scopes }, Some(verifier)) => {
                    local = local.with_auth(RouteAuthorizer {
                        name: authorizer.clone(),
                        verifier: verifier.clone(),
                        scopes: scopes.clone(),
                    });
                }
                (RouteAuth::Unsupported { authorizer, kind }, _) => warn(format!(
                    "{}: event {}: the {kind} authorizer {authorizer} is not emulated; the \
                     route is open locally",
                    def.logical_id, route.event
                )),
                _ => {}
            }
            routes.push(local);
        }
    }
    for route in &routes {
        let auth = match &route.auth {
            None => String::new(),
            Some(auth) if auth.scopes.is_empty() => format!(" (JWT {})", auth.name),
            Some(auth) => format!(" (JWT {}, scopes {})", auth.name, auth.scopes.join(" ")),
        };
        say(format!(
            "route {} -> {}{auth}",
            route.key(),
            route.function.name()
        ));
    }
    routes
}

/// Polls the queues, as Lambda does with the function's role (under IAM enforcement).
pub(super) fn start_pollers(
    stack: &Stack,
    sources: &[(SqsSource, Queue)],
    aws: &SdkConfig,
    sessions: &BTreeMap<String, Principal>,
) {
    for (source, queue) in sources {
        say(format!(
            "SQS {} -> {} (batch size {}, batching window {} s, up to {} batches at once{})",
            queue.name,
            source.function.name(),
            source.batch_size,
            source.batching_window.as_secs(),
            source.max_concurrency,
            if source.report_batch_item_failures {
                ", ReportBatchItemFailures"
            } else {
                ""
            }
        ));
        let sqs = match sessions.get(source.function.name()) {
            Some(role) => aws_sdk_sqs::Client::new(&role.sdk_config(aws)),
            None => aws_sdk_sqs::Client::new(aws),
        };
        stack.task(tokio::spawn(source.clone().run(sqs)));
    }
}

/// Runs the `rate(...)` schedules.
pub(super) fn start_schedules(
    options: &Options,
    stack: &Stack,
    to_run: &[ToRun],
    functions: &[Function],
    region: &str,
) {
    for (def, _) in to_run {
        let function = function_of(functions, def);
        for event in &def.schedules {
            let every = match schedule::parse_rate(&event.expression) {
                Ok(every) => every,
                Err(e) => {
                    warn(format!(
                        "{}: schedule {} is not run locally ({e}); invoke it by hand",
                        def.logical_id, event.event
                    ));
                    continue;
                }
            };
            say(format!(
                "schedule {} -> {} ({})",
                event.event,
                function.name(),
                event.expression
            ));
            let schedule = Schedule {
                name: format!("{}-{}", options.stack_name, event.event),
                function: function.clone(),
                every,
                input: event.input.clone(),
                v2: event.v2,
                region: region.to_string(),
                account_id: ACCOUNT_ID.into(),
            };
            stack.task(tokio::spawn(schedule.run()));
        }
    }
}
