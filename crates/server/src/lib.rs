//! The callhub server: HTTP API, auth, background workers and the operator CLI's
//! commands, over the call rules of `callhub-core` and the `callhub-store`.

pub mod app;
pub mod auth;
pub mod bus;
pub mod call_logs;
pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod guest;
pub mod hub;
pub mod listen;
pub mod metrics;
pub mod node_lock;
pub mod observe;
pub mod outbox;
pub mod presence;
pub mod routes;
pub mod settings;
pub mod sfu;
pub mod worker;
pub mod ws;

pub use app::{App, Server};
pub use config::Config;
