//! The pure core: no I/O, no clients, only data and rules.

pub mod access;
pub mod command;
pub mod event;
pub mod heartbeat;
pub mod order;
pub mod receipt;
pub mod timestamp;
pub mod upcast;
pub mod validation;
pub mod view;
