//! The library the orders-cqrs functions share.
//!
//! Layers: [`domain`] is pure (validation, totals, events, the read-model view); the adapter
//! modules (`postgres`, `sns`, `dynamodb`, `s3`) are thin ports over their clients, each behind a
//! cargo feature so that a function links only what it uses; [`config`] reads the environment.

pub mod config;
pub mod deployment;
pub mod domain;
pub mod metrics;
pub mod problem;
pub mod runtime;
pub mod telemetry;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(all(feature = "dynamodb", feature = "s3"))]
pub mod projection;
#[cfg(all(feature = "postgres", feature = "dynamodb", feature = "s3"))]
pub mod reconcile;
#[cfg(all(feature = "postgres", feature = "sns"))]
pub mod relay;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "service-errors")]
pub mod service_error;
#[cfg(feature = "sns")]
pub mod sns;

pub use domain::event::{EventType, OrderEvent};
pub use domain::order::{Customer, Order, OrderId, OrderLine, OrderStatus};
pub use domain::view::OrderView;
