use std::io::IsTerminal;
use std::process::ExitCode;

use callhub_server::cli::{Cli, Cmd, IfMissing};
use callhub_server::config::LogFormat;
use callhub_server::node_lock::NodeLock;
use callhub_server::{Config, Server, cli};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with its causes, for an operator and for scripts reading stderr.
            eprintln!("callhub: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Cli) -> anyhow::Result<()> {
    if let Cmd::Openapi = args.command {
        println!("{}", callhub_server::routes::openapi().to_pretty_json()?);
        return Ok(());
    }
    let cfg = Config::from_env()?;
    let filter = EnvFilter::try_from_env("CALLHUB_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into files or pipes.
        .with_ansi(std::io::stderr().is_terminal());
    match cfg.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    // Relative defaults make a new database in whatever folder a command runs in.
    match cfg.log_format {
        LogFormat::Text => eprintln!("callhub: database {}", cfg.database_shown()),
        // Every line of stderr is JSON for log shippers.
        LogFormat::Json => tracing::info!(database = %cfg.database_shown(), "database"),
    }
    match args.command {
        Cmd::Openapi => Ok(()),
        Cmd::Serve => serve(cfg).await,
        Cmd::Migrate => cli::migrate(&cfg).await,
        Cmd::User(cmd) => {
            println!("{}", cli::user_add(&cfg, cmd).await?);
            Ok(())
        }
        Cmd::Team(cmd) => {
            println!("{}", cli::team_add(&cfg, cmd).await?);
            Ok(())
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    // One node per SQLite database: a second would ring nobody live.
    let _lock = cfg
        .sqlite_file()
        .map(|db| NodeLock::take(&db))
        .transpose()?;
    cli::check_database(&cfg, IfMissing::Create)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    let server = Server::start(cfg, listener).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let deadline = server.app.config.shutdown_deadline;
    tracing::info!(
        deadline_secs = deadline.as_secs(),
        "shutting down: closing sockets, finishing requests under way"
    );
    if tokio::time::timeout(deadline, server.stop()).await.is_err() {
        tracing::warn!("CALLHUB_SHUTDOWN_SECS passed with work under way; exiting");
    }
    Ok(())
}
