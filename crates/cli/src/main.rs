//! `callhub-cli`: log in once, then create, read and answer calls and watch
//! notifications as they come, from a terminal or a script.

use std::io::{IsTerminal, Read};
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
        /// The server's URL. Without a scheme, loopback and private addresses
        /// (127.0.0.1:8080, localhost, 10.x, 192.168.x) are taken as http://; other
        /// hosts need it written out (https://calls.example.org).
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "CALLHUB_SERVER")]
        server: String,
        /// Your user id.
        #[arg(long)]
        user: String,
        /// Your domain; needed only when your user id exists in several.
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
        /// The call's title, shown in the pop-up and the mails.
        #[arg(long)]
        title: String,
        /// MESH: two people, peer to peer; SFU: any number, through the server.
        #[arg(long = "type", value_enum, default_value = "sfu")]
        call_type: Kind,
        /// A user id of your domain to invite; may be given more than once.
        #[arg(long = "invite")]
        invite: Vec<String>,
        /// An email address to invite (an external contact); may be given more than once.
        #[arg(long = "invite-email")]
        invite_email: Vec<String>,
        /// Mark the call as a service request (callReason SERVICE_REQUEST).
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
        /// Give the call a guest link (joinUrl) that anyone holding it may join by.
        #[arg(long)]
        anonymous: bool,
    },
    /// Print a call's log.
    Get {
        /// The call's id (callId).
        call_id: Uuid,
    },
    /// List your calls, newest first.
    List {
        /// Only calls in this state.
        #[arg(long, value_enum)]
        status: Option<Status>,
        /// Which page, from 0.
        #[arg(long, default_value_t = 0)]
        page: u32,
        /// Calls per page.
        #[arg(long, default_value_t = 20)]
        size: u32,
    },
    /// Answer a call (or join one under way).
    Join {
        /// The call's id (callId).
        call_id: Uuid,
    },
    /// Decline a call that rings you.
    Decline {
        /// The call's id (callId).
        call_id: Uuid,
    },
    /// Leave a call; it goes on for the others.
    Leave {
        /// The call's id (callId).
        call_id: Uuid,
    },
    /// End a call for everyone.
    End {
        /// The call's id (callId).
        call_id: Uuid,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// Two people, peer to peer.
    Mesh,
    /// Any number, through the server.
    Sfu,
}

#[derive(Clone, Copy, ValueEnum)]
enum Status {
    /// Planned for later.
    Planned,
    /// Under way.
    Started,
    /// Over.
    Ended,
}

/// The server's URL from `--server`: a scheme written out is kept; without one,
/// loopback and private addresses get `http://`, anything else is refused with
/// what to write (guessing http for a public host would send the password in clear).
fn server_url(arg: &str) -> anyhow::Result<String> {
    let arg = arg.trim().trim_end_matches('/');
    if arg.starts_with("http://") || arg.starts_with("https://") {
        return Ok(arg.to_owned());
    }
    if arg.contains("://") {
        bail!("--server {arg}: callhub speaks http:// or https://");
    }
    let authority = arg.split('/').next().unwrap_or(arg);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let local = host.eq_ignore_ascii_case("localhost")
        || match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => {
                ip.is_loopback() || ip.is_private() || ip.is_link_local()
            }
            Ok(std::net::IpAddr::V6(ip)) => {
                ip.is_loopback() || ip.is_unique_local() || ip.is_unicast_link_local()
            }
            Err(_) => false,
        };
    if !local {
        bail!(
            "--server {arg} has no scheme: write https://{arg} (or http://{arg} for a server without TLS)"
        );
    }
    Ok(format!("http://{arg}"))
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
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with its causes (no backtrace, whatever RUST_BACKTRACE says).
            eprintln!("callhub-cli: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Login {
            server,
            user,
            domain,
        } => {
            let server = server_url(&server)?;
            let mut password = String::new();
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                // Typed by hand: one line ends it (waiting for end-of-file looks like a hang).
                eprint!("password for {user} (shown as you type; pipe it in to hide it): ");
                stdin.read_line(&mut password)
            } else {
                stdin.read_to_string(&mut password)
            }
            .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!(
                    "no password on standard input: pipe it in, e.g. \
                     `echo \"$PASSWORD\" | callhub-cli login --user {user}`"
                );
            }
            let client = Client::new(&server);
            let info = client.login(&user, password, domain.as_deref()).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_server_without_scheme_is_http_only_on_local_addresses() {
        for (arg, url) in [
            ("127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("localhost:8080/", "http://localhost:8080"),
            ("192.168.1.20:8080", "http://192.168.1.20:8080"),
            ("[::1]:8080", "http://[::1]:8080"),
            ("https://calls.example.org", "https://calls.example.org"),
        ] {
            assert_eq!(server_url(arg).unwrap(), url);
        }
        let refused = server_url("calls.example.org").unwrap_err().to_string();
        assert!(refused.contains("https://calls.example.org"), "{refused}");
        assert!(server_url("8.8.8.8:80").is_err());
        assert!(server_url("ftp://127.0.0.1").is_err());
    }

    #[test]
    fn every_command_and_flag_is_described() {
        let missing = callhub_server::cli::undescribed(&Cli::command());
        assert!(missing.is_empty(), "undescribed: {missing:?}");
    }
}
