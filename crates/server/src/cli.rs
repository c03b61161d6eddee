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
/// Every command prints the database it uses on standard error. With no settings
/// it serves on 127.0.0.1:8080 with SQLite in ./data, relative to the folder it
/// runs in: run the operator commands in that same folder (or with the same
/// CALLHUB_DATA_DIR / CALLHUB_DATABASE_URL).
#[derive(Parser)]
#[command(name = "callhub", version, after_help = crate::settings::settings_help())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run the server (migrates the database first).
    ///
    /// On SQLite one node serves a database: a second `serve` on it is refused
    /// (it would ring nobody live); several nodes need PostgreSQL and NATS.
    #[command(after_help = crate::settings::settings_help())]
    Serve,
    /// Bring the database schema up to date and exit (creates a SQLite database).
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
    ///
    /// The database must exist (run `callhub serve` or `callhub migrate` first).
    Add {
        /// The account's domain (tenant), e.g. ubimax.
        #[arg(long)]
        domain: String,
        /// The login name, unique in its domain: 1 to 64 letters, digits or ._@-.
        #[arg(long = "user-id")]
        user_id: String,
        /// The name others see; the user id when omitted.
        #[arg(long = "display-name")]
        display_name: Option<String>,
        /// Where invitations are mailed.
        #[arg(long)]
        email: Option<String>,
        /// Where invitations are texted: E.164, e.g. +4917612345678.
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
    ///
    /// The database must exist (run `callhub serve` or `callhub migrate` first).
    Add {
        /// The team's domain; its members are accounts of it.
        #[arg(long)]
        domain: String,
        /// The team's name, unique in its domain.
        #[arg(long)]
        name: String,
        /// A member's user id; may be given more than once.
        #[arg(long = "member")]
        members: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Makes and answers calls.
    User,
    /// A connector: creates calls on behalf of other users.
    Broker,
    /// Manages its domain (webhooks, deliveries).
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

/// The commands and flags of `cmd` that `--help` shows without a description.
pub fn undescribed(cmd: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.get_help().is_none() && id != "help" && id != "version" {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() {
                missing.push(path.clone());
            }
            walk(sub, &path, missing);
        }
    }
    let mut missing = Vec::new();
    walk(cmd, cmd.get_name(), &mut missing);
    missing
}

/// What a command does with a SQLite database that is not there yet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// `serve` and `migrate`: make it, and say so.
    Create,
    /// `user add`, `team add`: refuse. Run from the wrong folder they would fill a
    /// new database no server reads, and look as if they had worked.
    Refuse(&'static str),
}

/// Checks the SQLite file against `if_missing` before anything opens (and so makes) it.
pub fn check_database(cfg: &Config, if_missing: IfMissing) -> anyhow::Result<()> {
    let Some(file) = cfg.sqlite_file() else {
        return Ok(());
    };
    if file.exists() {
        return Ok(());
    }
    match if_missing {
        IfMissing::Create => {
            let note = format!("no database at {} yet: creating it", file.display());
            match cfg.log_format {
                crate::config::LogFormat::Text => eprintln!("callhub: {note}"),
                // With CALLHUB_LOG_FORMAT=json every line of stderr is JSON.
                crate::config::LogFormat::Json => tracing::info!("{note}"),
            }
            Ok(())
        }
        IfMissing::Refuse(command) => bail!(
            "no database at {}: `{command}` does not create one. Run it in the folder the \
             server runs in, or set CALLHUB_DATA_DIR (or CALLHUB_DATABASE_URL) to the \
             server's; for a new installation run `callhub migrate` (or `callhub serve`) first",
            file.display()
        ),
    }
}

async fn open_store(cfg: &Config, if_missing: IfMissing) -> anyhow::Result<SqlStore> {
    check_database(cfg, if_missing)?;
    let ring = chrono::Duration::from_std(cfg.ring_timeout)?;
    Ok(SqlStore::connect(&cfg.database_url, &cfg.pool, ring).await?)
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
    let store = open_store(cfg, IfMissing::Refuse("callhub user add")).await?;
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
    let store = open_store(cfg, IfMissing::Refuse("callhub team add")).await?;
    let (team, users) = store.create_team(&domain, &name, &members).await?;
    store.close().await;
    let mut v = serde_json::to_value(&team)?;
    v["members"] = serde_json::to_value(&users)?;
    Ok(v.to_string())
}

pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    open_store(cfg, IfMissing::Create).await?.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_and_flag_is_described() {
        let missing = undescribed(&Cli::command());
        assert!(missing.is_empty(), "undescribed: {missing:?}");
    }
}
