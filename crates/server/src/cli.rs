//! The `callhub` command: `serve`, `migrate`, and operators' `user add` / `team add`.

use std::io::Read;

use anyhow::{Context, bail};
use callhub_core::Role;
use callhub_store::{NewUser, SqlStore, Store};
use clap::{Parser, Subcommand, ValueEnum};

use crate::auth::hash_password;
use crate::config::Config;

/// callhub: a self-hosted server for audio and video calls.
///
/// Configured by CALLHUB_* environment variables (or the same keys in ./callhub.toml);
/// with none set it serves on 127.0.0.1:8080 with SQLite in ./data.
#[derive(Parser)]
#[command(name = "callhub", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run the server (migrates the database first).
    Serve,
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage teams.
    #[command(subcommand)]
    Team(TeamCmd),
    /// Print the OpenAPI document (as served at /openapi.json) and exit; the SDKs' types are generated from it.
    Openapi,
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create an account; prints its UserInfo as one JSON line.
    Add {
        #[arg(long)]
        domain: String,
        #[arg(long = "user-id")]
        user_id: String,
        #[arg(long = "display-name")]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// E.164, e.g. +4917612345678.
        #[arg(long)]
        phone: Option<String>,
        /// May be given more than once; `user` when omitted.
        #[arg(long = "role", value_enum)]
        roles: Vec<RoleArg>,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long = "password-stdin", required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum TeamCmd {
    /// Create a team of existing users; prints the team as one JSON line.
    Add {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        name: String,
        /// A member's user id; may be given more than once.
        #[arg(long = "member")]
        members: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    User,
    Broker,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::User => Role::User,
            RoleArg::Broker => Role::Broker,
            RoleArg::Admin => Role::Admin,
        }
    }
}

fn check_name(what: &str, s: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if !ok {
        bail!("{what} {s:?} must be 1 to 64 letters, digits or ._@-");
    }
    Ok(())
}

async fn open_store(cfg: &Config) -> anyhow::Result<SqlStore> {
    let ring = chrono::Duration::from_std(cfg.ring_timeout)?;
    SqlStore::connect(&cfg.database_url, &cfg.pool, ring)
        .await
        .context("opening the database")
}

pub async fn user_add(cfg: &Config, cmd: UserCmd) -> anyhow::Result<String> {
    let UserCmd::Add {
        domain,
        user_id,
        display_name,
        email,
        phone,
        roles,
        password_stdin: _,
    } = cmd;
    check_name("domain", &domain)?;
    check_name("user id", &user_id)?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    let phone = phone.filter(|p| !p.is_empty());
    if let Some(p) = &phone {
        let digits = p.strip_prefix('+').unwrap_or("");
        if !(7..=15).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            bail!("--phone {p:?} is not an E.164 number such as +4917612345678");
        }
    }
    let mut roles: Vec<Role> = roles.into_iter().map(Role::from).collect();
    if roles.is_empty() {
        roles.push(Role::User);
    }
    roles.sort_by_key(|r| *r as u8);
    roles.dedup();
    let store = open_store(cfg).await?;
    let user = store
        .create_user(NewUser {
            display_name: display_name.unwrap_or_else(|| user_id.clone()),
            domain,
            user_id,
            email: email.filter(|e| !e.is_empty()),
            phone_number: phone,
            roles,
            password_hash: hash_password(password).await?,
        })
        .await?;
    store.close().await;
    Ok(serde_json::to_string(&user)?)
}

pub async fn team_add(cfg: &Config, cmd: TeamCmd) -> anyhow::Result<String> {
    let TeamCmd::Add {
        domain,
        name,
        members,
    } = cmd;
    check_name("domain", &domain)?;
    if name.trim().is_empty() || name.len() > 100 {
        bail!("the team name must be 1 to 100 characters");
    }
    let store = open_store(cfg).await?;
    let (team, users) = store.create_team(&domain, name.trim(), &members).await?;
    store.close().await;
    let mut v = serde_json::to_value(&team)?;
    v["members"] = serde_json::to_value(&users)?;
    Ok(v.to_string())
}

pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    open_store(cfg).await?.close().await;
    Ok(())
}
