//! The database's floor: createCall's transaction (the call, its contacts, its
//! events and messages) straight into the store, with no HTTP and no auth.

use std::sync::Arc;
use std::time::{Duration, Instant};

use callhub_core::{CallReason, CallType, NewCall, UserInfo, create};
use callhub_store::{PoolSettings, SqlStore, Store};
use serde_json::json;

use crate::stats::{Latencies, with};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    database_url: String,
    /// Users made by `setup` (u0…): callers and invitees.
    #[arg(long, default_value_t = 100)]
    users: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let store = Arc::new(
        SqlStore::connect(
            &a.database_url,
            &PoolSettings::default(),
            chrono::Duration::seconds(60),
        )
        .await?,
    );
    let mut users: Vec<UserInfo> = Vec::new();
    for i in 0..a.users {
        users.push(
            store
                .user_by_name(
                    &crate::setup::bench_domain(),
                    &callhub_core::text::UserId::parse("userId", &format!("u{i}"))?,
                )
                .await?
                .expect("run setup first"),
        );
    }
    let users = Arc::new(users);
    let deadline = Instant::now() + Duration::from_secs(a.duration_secs);
    let mut tasks = Vec::new();
    for w in 0..a.concurrency {
        let (store, users) = (store.clone(), users.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut n = w;
            while Instant::now() < deadline {
                let caller = users[n % users.len()].clone();
                let invitee = users[(n + 1) % users.len()].as_contact();
                let new = NewCall {
                    call_id: uuid::Uuid::new_v4(),
                    title: format!("floor {n}"),
                    reason: CallReason::Standard,
                    call_type: CallType::Sfu,
                    anonymous_join_allowed: false,
                    inform_others_directly: true,
                    planned_at: None,
                    requester: caller,
                    on_behalf_of: None,
                    invited: vec![invitee],
                    teams: vec![],
                };
                let start = Instant::now();
                let t = create(new, chrono::Utc::now()).expect("a valid call");
                store.insert_call(t).await.expect("insert");
                lat.record(start.elapsed());
                n += a.concurrency;
            }
            lat
        }));
    }
    let mut all = Latencies::default();
    for t in tasks {
        all.merge(&t.await?);
    }
    let rate = all.count() as f64 / a.duration_secs as f64;
    let report = json!({"bench": "floor", "what": "insert_call straight into the store", "concurrency": a.concurrency,
        "ok": all.count(), "achieved_per_s": rate.round()});
    println!("{}", with(report, all.summary()));
    Ok(())
}
