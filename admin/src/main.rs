//! `orders-admin`: operator commands against a local or deployed stack. Configuration comes
//! from the same environment variables the functions read (see README).

mod redrive;

use clap::{Parser, Subcommand};
use orders::config::{DbConfig, RelayConfig, UpdaterConfig};
use orders::dynamodb::OrderViewStore;
use orders::postgres::OrderStore;
use orders::projection::ReadModel;
use orders::s3::ReceiptStore;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "orders-admin", about = "Operate the orders-cqrs system")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending schema migrations (safe to run concurrently and repeatedly).
    Migrate,
    /// Publish outbox events that are still unpublished (one relay run).
    Relay,
    /// Re-project the read model from PostgreSQL: every order, or one.
    Rebuild {
        /// Only this order.
        #[arg(long)]
        order: Option<String>,
        #[arg(long, default_value_t = 200)]
        page_size: i64,
    },
    /// Compare the write and read models; exit status 1 when they differ.
    Verify {
        #[arg(long, default_value_t = 200)]
        page_size: i64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move messages from the dead-letter queue back to the queue.
    RedriveDlq {
        #[arg(long, env = "ORDER_EVENTS_QUEUE_URL")]
        queue_url: String,
        #[arg(long, env = "ORDER_EVENTS_DLQ_URL")]
        dlq_url: String,
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    orders::telemetry::init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("orders-admin: {err}");
            ExitCode::from(2)
        }
    }
}

async fn store(aws: &aws_config::SdkConfig) -> Result<(OrderStore, DbConfig), Error> {
    let db = DbConfig::from_env()?;
    let pool = orders::postgres::connect(&db, aws).await?;
    Ok((OrderStore::new(pool, db.statement_timeout), db))
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let aws = orders::aws::load_with_default_credentials(orders::aws::SdkBudget::OPERATOR).await;
    match cli.command {
        Command::Migrate => {
            let (store, _) = store(&aws).await?;
            let applied = orders::postgres::migrate(store.pool()).await?;
            println!(
                "migrations applied: {}",
                if applied.is_empty() {
                    "none (schema is current)".into()
                } else {
                    applied.join(", ")
                }
            );
        }
        Command::Relay => {
            let config = RelayConfig::from_env()?;
            let (store, _) = store(&aws).await?;
            let settings = orders::relay::RelaySettings::from_config(&config);
            let publisher =
                orders::sns::EventPublisher::new(&aws, config.topic_arn, config.publish_timeout);
            let report = orders::relay::relay_once(store.pool(), &publisher, &settings).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Rebuild { order, page_size } => {
            let config = UpdaterConfig::from_env()?;
            let only = order.map(|id| id.parse()).transpose()?;
            let (store, _) = store(&aws).await?;
            let read_model = ReadModel::new(
                OrderViewStore::new(&aws, config.table),
                ReceiptStore::new(&aws, config.bucket),
            );
            let report = orders::reconcile::rebuild(&store, &read_model, only, page_size).await?;
            println!(
                "rebuild: {} applied, {} already newer, {} failed",
                report.applied, report.stale, report.failed
            );
            if report.failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Verify { page_size, json } => {
            // The read model's table and bucket, as the updater writes them; verify signs no
            // cursors, so it needs no cursor key.
            let config = UpdaterConfig::from_env()?;
            let (store, _) = store(&aws).await?;
            let views = OrderViewStore::new(&aws, config.table);
            let report = orders::reconcile::verify(&store, &views, page_size).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for drift in &report.drift {
                    println!("drift: {}", serde_json::to_string(drift)?);
                }
                println!(
                    "verify: {} orders, {} views checked, {} differences",
                    report.orders_checked,
                    report.views_checked,
                    report.drift.len()
                );
            }
            if !report.is_clean() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::RedriveDlq {
            queue_url,
            dlq_url,
            max,
        } => {
            let sqs = aws_sdk_sqs::Client::new(&aws);
            let moved = redrive::redrive(&sqs, &dlq_url, &queue_url, max).await?;
            println!("redrive: moved {moved} messages from the DLQ to the queue");
        }
    }
    Ok(ExitCode::SUCCESS)
}
