//! orders-local: the whole orders-cqrs system on one machine, without Docker or an AWS account.
//!
//! PostgreSQL (a local cluster) and moto stand in for RDS and the AWS services; each function
//! runs as a real process against an emulation of the Lambda Runtime API ([`runtime_api`]); an
//! emulation of API Gateway's HTTP API ([`http_api`]), of the SQS event source mapping
//! ([`sqs_source`]) and of schedules ([`schedule`]) invoke them as AWS would, configured from
//! `template.yaml` ([`template`]), with API Gateway's JWT authorizer emulated against a local
//! development key ([`auth`]). AWS's service limits, which moto does not enforce, are enforced
//! in front of it ([`aws_limits`]). See docs/LOCAL.md.

pub mod auth;
pub mod aws_limits;
pub mod cli;
pub mod http_api;
pub mod iam;
pub mod moto;
pub mod output;
pub mod postgres;
pub mod process;
pub mod provision;
pub mod reproject;
pub mod runner;
pub mod runtime_api;
pub mod schedule;
pub mod sqs_source;
pub mod template;
