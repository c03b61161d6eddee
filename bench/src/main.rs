//! callhub's load generators. Each subcommand measures one thing against a
//! running server (or, for `floor`, the database alone) and prints one JSON line
//! of figures; `bench/run.sh` runs them side by side and writes the report.

mod floor;
mod http;
mod janus;
mod ring;
mod setup;
mod sfu;
mod sockets;
mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "callhub-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make `--users` accounts (domain `bench`, users u0…) and write an access token
    /// for each, one JSON line per user, signed with the data dir's secret.
    Setup {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        users: usize,
        #[arg(long)]
        tokens: PathBuf,
        /// Accounts without a mail address: their invitations send no mail, so a
        /// load measures the calls and notifications without the outbox.
        #[arg(long)]
        no_mail: bool,
    },
    /// HTTP load on one route, at a fixed offered rate (`--rate`) or at saturation
    /// (`--concurrency`, closed loop).
    Http(http::Args),
    /// createCall -> the invitee's `incomingCall` on its socket, at a fixed call rate.
    Ring(ring::Args),
    /// Idle authenticated WebSockets, opened from given loopback source addresses.
    Sockets(sockets::Args),
    /// Notifications delivered per second to many connected users.
    Fanout(sockets::FanoutArgs),
    /// The same inserts as createCall, straight into the store: the database's floor.
    Floor(floor::Args),
    /// N str0m participants in one SFU call, everyone receiving everyone.
    Sfu(sfu::Args),
    /// The same participants and streams through Janus VideoRoom.
    Janus(janus::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    callhub_client::install_tls_provider();
    match Cli::parse().command {
        Cmd::Setup {
            database_url,
            data_dir,
            users,
            tokens,
            no_mail,
        } => setup::run(&database_url, &data_dir, users, &tokens, !no_mail).await,
        Cmd::Http(a) => http::run(a).await,
        Cmd::Ring(a) => ring::run(a).await,
        Cmd::Sockets(a) => sockets::run(a).await,
        Cmd::Fanout(a) => sockets::fanout(a).await,
        Cmd::Floor(a) => floor::run(a).await,
        Cmd::Sfu(a) => sfu::run(a).await,
        Cmd::Janus(a) => janus::run(a).await,
    }
}
