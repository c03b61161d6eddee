//! `callhub-cli`: log in once, then create, read and answer calls and watch
//! notifications as they come, from a terminal or a script.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use callhub_client::api::{CallLogsQuery, ContactInput, ContactsQuery, CreateCallRequest};
use callhub_client::{Client, Frame, SavedSession};
use callhub_core::{CallReason, CallStatus, CallType};
use clap::{Parser, Subcommand, ValueEnum};
use uuid::Uuid;

/// A command line for callhub. `login` keeps the session in
/// $CALLHUB_CLI_SESSION (default ~/.config/callhub/session.json); every other
/// command uses and refreshes it. Output is JSON, one document per line.
#[derive(Parser)]
#[command(name = "callhub-cli", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Log in; the password is read from standard input.
    Login {
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "CALLHUB_SERVER")]
        server: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        domain: Option<String>,
    },
    /// End the session.
    Logout,
    /// Calls.
    #[command(subcommand)]
    Call(CallCmd),
    /// Find people and teams of your domain to call, with their presence.
    Contacts {
        /// Text their user id, name or email contains (case-insensitive); none lists everyone.
        #[arg(long)]
        q: Option<String>,
        /// How many of each, 1 to 100.
        #[arg(long, default_value_t = 20)]
        size: u32,
    },
    /// Print notifications (pop-ups, ringing stopped, call events, presence) as they come.
    Watch {
        /// Replay every message after this sequence number first.
        #[arg(long)]
        since: Option<i64>,
        /// Also print presence changes of your domain (`{"type":"presence",…}`).
        #[arg(long)]
        presence: bool,
    },
}

#[derive(Subcommand)]
enum CallCmd {
    /// Create a call; invitees are user ids of your domain.
    Create {
        #[arg(long)]
        title: String,
        #[arg(long = "type", value_enum, default_value = "sfu")]
        call_type: Kind,
        #[arg(long = "invite")]
        invite: Vec<String>,
        #[arg(long = "invite-email")]
        invite_email: Vec<String>,
        #[arg(long)]
        service_request: bool,
        /// ISO-8601; in the future, the call is planned.
        #[arg(long)]
        planned: Option<String>,
        /// Create it on behalf of this userDbId (brokers).
        #[arg(long)]
        creator_user: Option<i64>,
        /// Do not ring anyone now.
        #[arg(long)]
        quiet: bool,
        #[arg(long)]
        anonymous: bool,
    },
    /// Print a call's log.
    Get {
        call_id: Uuid,
    },
    /// List your calls, newest first.
    List {
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[arg(long, default_value_t = 0)]
        page: u32,
        #[arg(long, default_value_t = 20)]
        size: u32,
    },
    Join {
        call_id: Uuid,
    },
    Decline {
        call_id: Uuid,
    },
    Leave {
        call_id: Uuid,
    },
    End {
        call_id: Uuid,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Mesh,
    Sfu,
}

#[derive(Clone, Copy, ValueEnum)]
enum Status {
    Planned,
    Started,
    Ended,
}

fn session_path() -> PathBuf {
    if let Ok(p) = std::env::var("CALLHUB_CLI_SESSION") {
        return p.into();
    }
    let base = std::env::var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(".config")
        });
    base.join("callhub").join("session.json")
}

fn save(client: &Client) -> anyhow::Result<()> {
    let Some(saved) = client.saved_session() else {
        return Ok(());
    };
    let path = session_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // One temporary file per process: `watch` and a command save side by side.
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&saved)?)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

fn load() -> anyhow::Result<Client> {
    let path = session_path();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no session in {}: run `callhub-cli login`", path.display()))?;
    let saved: SavedSession = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a session", path.display()))?;
    Ok(Client::from_saved(saved))
}

fn print<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Login {
            server,
            user,
            domain,
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let client = Client::new(&server);
            let info = client
                .login(
                    &user,
                    password.trim_end_matches(['\r', '\n']),
                    domain.as_deref(),
                )
                .await?;
            save(&client)?;
            print(&info)
        }
        Cmd::Logout => {
            let client = load()?;
            client.logout().await?;
            std::fs::remove_file(session_path()).ok();
            Ok(())
        }
        Cmd::Watch { since, presence } => {
            let client = load()?;
            let mut stream = client.notifications_since(since);
            loop {
                tokio::select! {
                    frame = stream.recv() => match frame {
                        Some(Frame::Notification { seq, notification }) => {
                            let mut v = serde_json::to_value(&notification)?;
                            v["seq"] = seq.into();
                            print(&v)?;
                        }
                        Some(Frame::Presence { user_db_id, presence: now }) if presence => {
                            print(&serde_json::json!({"type": "presence", "userDbId": user_db_id, "presence": now}))?;
                        }
                        Some(Frame::Hello { seq, .. }) => eprintln!("connected; latest message is {seq}"),
                        Some(Frame::Error(e)) => eprintln!("server: {e}"),
                        Some(_) => {}
                        None => break,
                    },
                    _ = tokio::signal::ctrl_c() => break,
                }
                save(&client)?;
            }
            save(&client)
        }
        Cmd::Contacts { q, size } => {
            let client = load()?;
            let found = client
                .rtc()
                .get_contacts(&ContactsQuery {
                    q,
                    size: Some(size),
                })
                .await;
            save(&client)?;
            print(&found?)
        }
        Cmd::Call(cmd) => {
            let client = load()?;
            let result = call(&client, cmd).await;
            save(&client)?;
            result
        }
    }
}

async fn call(client: &Client, cmd: CallCmd) -> anyhow::Result<()> {
    let rtc = client.rtc();
    match cmd {
        CallCmd::Create {
            title,
            call_type,
            invite,
            invite_email,
            service_request,
            planned,
            creator_user,
            quiet,
            anonymous,
        } => {
            if invite.is_empty() && invite_email.is_empty() && call_type == Kind::Mesh {
                bail!("a MESH call needs one --invite");
            }
            let domain = client.user().map(|u| u.domain);
            let mut contacts: Vec<ContactInput> = invite
                .into_iter()
                .map(|u| ContactInput {
                    user_id: Some(u),
                    domain: domain.clone(),
                    ..Default::default()
                })
                .collect();
            contacts.extend(invite_email.into_iter().map(|e| ContactInput {
                email: Some(e),
                ..Default::default()
            }));
            let req = CreateCallRequest {
                call_title: title,
                call_reason: if service_request {
                    CallReason::ServiceRequest
                } else {
                    CallReason::Standard
                },
                call_type: match call_type {
                    Kind::Mesh => CallType::Mesh,
                    Kind::Sfu => CallType::Sfu,
                },
                invited_contacts: contacts,
                invited_teams: vec![],
                join_anonymous_allowed: anonymous,
                inform_others_directly: Some(!quiet),
                creator_user,
                planned_date_time: planned,
            };
            print(&rtc.create_call_for_contacts(&req).await?)
        }
        CallCmd::Get { call_id } => print(&rtc.get_call_log_by_id(call_id).await?),
        CallCmd::List { status, page, size } => {
            let status = status.map(|s| match s {
                Status::Planned => CallStatus::Planned,
                Status::Started => CallStatus::Started,
                Status::Ended => CallStatus::Ended,
            });
            print(
                &rtc.get_call_logs(&CallLogsQuery {
                    status,
                    page: Some(page),
                    size: Some(size),
                })
                .await?,
            )
        }
        CallCmd::Join { call_id } => print(&rtc.join_call(call_id).await?),
        CallCmd::Decline { call_id } => print(&rtc.decline_call(call_id).await?),
        CallCmd::Leave { call_id } => print(&rtc.leave_call(call_id).await?),
        CallCmd::End { call_id } => print(&rtc.end_call(call_id).await?),
    }
}
