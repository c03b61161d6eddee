//! The integration suite: every test drives a real server over HTTP, on SQLite and
//! (with CALLHUB_TEST_DATABASE_URL) on PostgreSQL.

mod helpers;
mod outbox_support;

mod auth;
mod bad_input;
mod broker;
mod calls;
mod concurrency;
mod deliveries;
mod directory;
mod durability;
mod guests;
mod hardening;
mod nodes;
mod observability;
mod openapi;
mod operator;
mod outage;
mod sfu;
mod sockets;
mod timers;
mod web;
