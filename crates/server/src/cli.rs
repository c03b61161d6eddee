//! The `callhub` command: `serve`, `migrate`, and operators' `user add` / `team add`.

use std::io::Read;

use anyhow::{Context, bail};
use callhub_core::Role;
use callhub_core::text::{
    DisplayName, Domain, Email, PhoneNumber, TeamName, UserId, check_no_control, optional,
};
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
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create an account; prints its UserInfo as one JSON line.
    Add {
        /// 1 to 64 letters, digits or ._@-
        #[arg(long)]
        domain: String,
        /// 1 to 64 letters, digits or ._@-
        #[arg(long = "user-id")]
        user_id: String,
        /// 1 to 100 characters, no control characters; the user id when omitted.
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
        /// 1 to 64 letters, digits or ._@-
        #[arg(long)]
        domain: String,
        /// 1 to 100 characters, no control characters.
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
    // The same parsing as the API's: no account can be made that it would refuse.
    let domain = Domain::parse("--domain", &domain)?;
    let user_id = UserId::parse("--user-id", &user_id)?;
    let display_name = match display_name {
        Some(n) => DisplayName::parse("--display-name", &n)?,
        None => DisplayName::parse("--display-name", user_id.as_str())?,
    };
    let email = optional(email.as_deref(), |e| Email::parse("--email", e))?;
    let phone = optional(phone.as_deref(), |p| PhoneNumber::parse("--phone", p))?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    check_no_control("the password", &password)?;
    let mut roles: Vec<Role> = roles.into_iter().map(Role::from).collect();
    if roles.is_empty() {
        roles.push(Role::User);
    }
    roles.sort_by_key(|r| *r as u8);
    roles.dedup();
    let store = open_store(cfg).await?;
    let user = store
        .create_user(NewUser {
            display_name,
            domain,
            user_id,
            email,
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
    let domain = Domain::parse("--domain", &domain)?;
    let name = TeamName::parse("--name", &name)?;
    let members = members
        .iter()
        .map(|m| UserId::parse("--member", m))
        .collect::<Result<Vec<_>, _>>()?;
    let store = open_store(cfg).await?;
    let (team, users) = store.create_team(&domain, &name, &members).await?;
    store.close().await;
    let mut v = serde_json::to_value(&team)?;
    v["members"] = serde_json::to_value(&users)?;
    Ok(v.to_string())
}

pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    open_store(cfg).await?.close().await;
    Ok(())
}
