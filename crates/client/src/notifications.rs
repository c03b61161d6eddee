//! The notification stream: one WebSocket to `/ws` that reconnects by itself and
//! resumes from the last message it saw, so nothing is lost or repeated.

use std::time::Duration;

use callhub_core::Notification;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

use crate::Client;

/// A frame from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The socket is (re)connected; `seq` is the user's latest message.
    Hello {
        seq: i64,
        session_id: String,
    },
    /// A sequenced message, each exactly once and in order.
    Notification {
        seq: i64,
        notification: Notification,
    },
    /// WebRTC signaling from another participant.
    Signal {
        call_id: Uuid,
        from: i64,
        payload: Value,
    },
    /// Someone of the domain became online, busy or offline (not sequenced).
    Presence {
        user_db_id: i64,
        presence: callhub_core::Presence,
    },
    /// The server refused a frame of ours.
    Error(String),
    Pong,
}

impl Frame {
    pub fn parse(text: &str) -> Option<Frame> {
        let v: Value = serde_json::from_str(text).ok()?;
        Some(match v["type"].as_str()? {
            "hello" => Frame::Hello {
                seq: v["seq"].as_i64()?,
                session_id: v["sessionId"].as_str()?.to_owned(),
            },
            "signal" => Frame::Signal {
                call_id: v["callId"].as_str()?.parse().ok()?,
                from: v["from"].as_i64()?,
                payload: v["payload"].clone(),
            },
            "presence" => Frame::Presence {
                user_db_id: v["userDbId"].as_i64()?,
                presence: serde_json::from_value(v["presence"].clone()).ok()?,
            },
            "error" => Frame::Error(v["detail"].as_str().unwrap_or_default().to_owned()),
            "pong" => Frame::Pong,
            _ => Frame::Notification {
                seq: v["seq"].as_i64()?,
                notification: serde_json::from_value(v).ok()?,
            },
        })
    }
}

/// A live, self-healing notification stream of one session.
pub struct Notifications {
    frames: mpsc::Receiver<Frame>,
    outgoing: mpsc::Sender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Notifications {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Notifications {
    /// The next frame; `None` once the session is gone for good (logged out).
    pub async fn recv(&mut self) -> Option<Frame> {
        self.frames.recv().await
    }

    /// The next sequenced message, skipping other frames.
    pub async fn next_notification(&mut self) -> Option<(i64, Notification)> {
        loop {
            if let Frame::Notification { seq, notification } = self.recv().await? {
                return Some((seq, notification));
            }
        }
    }

    /// Sends WebRTC signaling to another participant (`to` is their contact id).
    pub async fn signal(&self, call_id: Uuid, to: i64, payload: Value) {
        let frame = json!({"type": "signal", "callId": call_id, "to": to, "payload": payload});
        let _ = self.outgoing.send(frame.to_string()).await;
    }

    /// Sends a raw text frame.
    pub async fn send_raw(&self, text: String) {
        let _ = self.outgoing.send(text).await;
    }
}

impl Client {
    /// Opens the notification stream. The first frame is `Hello`; after it, every
    /// message committed for the user arrives, across reconnects, once and in order.
    pub fn notifications(&self) -> Notifications {
        self.notifications_since(None)
    }

    /// As `notifications`, replaying first every message after `since`.
    pub fn notifications_since(&self, since: Option<i64>) -> Notifications {
        let (tx, frames) = mpsc::channel(1024);
        let (outgoing, out_rx) = mpsc::channel(64);
        let client = self.clone();
        let task = tokio::spawn(run(client, since, tx, out_rx));
        Notifications {
            frames,
            outgoing,
            task,
        }
    }
}

async fn run(
    client: Client,
    mut since: Option<i64>,
    tx: mpsc::Sender<Frame>,
    mut out: mpsc::Receiver<String>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Ok(token) = client.access_token().await else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        };
        let base = client.base_url().replacen("http", "ws", 1);
        let url = match since {
            Some(s) => format!("{base}/ws?since={s}"),
            None => format!("{base}/ws"),
        };
        let mut request = match url.into_client_request() {
            Ok(r) => r,
            Err(_) => return,
        };
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("a header value"),
        );
        let socket = match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => socket,
            Err(e) => {
                tracing::debug!(error = %e, "notification socket: connect failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let (mut sink, mut stream) = socket.split();
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let text = match msg {
                        Some(Ok(WsMessage::Text(t))) => t,
                        Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => continue,
                    };
                    let Some(frame) = Frame::parse(text.as_str()) else { continue };
                    match &frame {
                        Frame::Hello { seq, .. } if since.is_none() => since = Some(*seq),
                        Frame::Notification { seq, .. } => {
                            if since.is_some_and(|s| *seq <= s) {
                                continue; // seen before a reconnect
                            }
                            since = Some(*seq);
                        }
                        _ => {}
                    }
                    if tx.send(frame).await.is_err() {
                        return; // nobody listens
                    }
                }
                text = out.recv() => match text {
                    Some(t) => { let _ = sink.send(WsMessage::Text(t.into())).await; }
                    None => return,
                },
            }
        }
        tokio::time::sleep(backoff).await;
    }
}
