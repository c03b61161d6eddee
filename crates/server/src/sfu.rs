//! The node's SFU: one UDP socket (`CALLHUB_SFU_UDP`) and one task driving the
//! sans-IO core of `callhub-sfu`. Sockets hand it `sfu` frames of participants
//! the call rules let in; commits tell it who left and which calls ended; it
//! answers with datagrams and `sfu` frames.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use callhub_core::{CallStatus, CallType, EventType};
use callhub_sfu::{Output, PeerId, Refused, Sfu, Stats};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::App;
use crate::hub::Owner;

/// Datagrams read in one go before the SFU's output is sent.
const READ_BATCH: usize = 64;

enum Command {
    Signal {
        from: PeerId,
        owner: Owner,
        payload: Value,
        reply: oneshot::Sender<Result<(), Refused>>,
    },
    Leave(PeerId),
    End(Uuid),
}

pub struct SfuNode {
    tx: mpsc::UnboundedSender<Command>,
    /// Taken by the task when the node starts.
    parts: Mutex<Option<(mpsc::UnboundedReceiver<Command>, StdUdpSocket)>>,
    /// The bound UDP address.
    pub local: SocketAddr,
    /// The address in the SFU's ICE candidates.
    pub candidate: SocketAddr,
    stats: Mutex<Stats>,
}

impl SfuNode {
    /// Binds the SFU's UDP socket (port 0: any free port).
    pub fn bind(udp: SocketAddr, public_ip: Option<IpAddr>) -> anyhow::Result<Self> {
        let socket = StdUdpSocket::bind(udp)
            .map_err(|e| anyhow::anyhow!("the SFU cannot bind UDP {udp} (CALLHUB_SFU_UDP): {e}"))?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let ip = public_ip.unwrap_or_else(|| {
            if local.ip().is_unspecified() {
                outward_ip()
            } else {
                local.ip()
            }
        });
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Self {
            tx,
            parts: Mutex::new(Some((rx, socket))),
            local,
            candidate: SocketAddr::new(ip, local.port()),
            stats: Mutex::new(Stats::default()),
        })
    }

    /// Hands a participant's `sfu` payload to the SFU; answers why it was refused.
    pub async fn signal(&self, from: PeerId, owner: Owner, payload: Value) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Signal {
                from,
                owner,
                payload,
                reply,
            })
            .map_err(|_| "the SFU is stopping".to_owned())?;
        match answer.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("the SFU is stopping".into()),
        }
    }

    /// After a commit: participants who left an SFU call lose their session; an
    /// ended call frees its memory.
    pub fn call_changed(&self, committed: &callhub_store::Committed) {
        let call = &committed.call;
        if call.call_type != CallType::Sfu {
            return;
        }
        if call.status == CallStatus::Ended {
            let _ = self.tx.send(Command::End(call.call_id));
            return;
        }
        for e in committed.new_events() {
            if e.kind == EventType::Leave {
                let _ = self.tx.send(Command::Leave(PeerId {
                    call: call.call_id,
                    contact: e.contact,
                }));
            }
        }
    }

    pub fn stats(&self) -> Stats {
        *self.stats.lock().expect("not poisoned")
    }
}

/// The address other hosts reach this one by, for a socket bound to 0.0.0.0
/// without `CALLHUB_SFU_PUBLIC_IP`: the source address of the default route
/// (a UDP connect sends nothing). Without a route: loopback.
fn outward_ip() -> IpAddr {
    StdUdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Drives the SFU until shutdown.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let Some((mut commands, socket)) = app.sfu.parts.lock().expect("not poisoned").take() else {
        return;
    };
    let socket = match tokio::net::UdpSocket::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the SFU's socket cannot be driven");
            return;
        }
    };
    tracing::info!(udp = %app.sfu.local, candidate = %app.sfu.candidate, "SFU listening");
    let mut sfu = Sfu::new(app.sfu.local, app.sfu.candidate, Instant::now());
    let mut owners: HashMap<PeerId, Owner> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    let mut published = Instant::now();
    loop {
        let deadline = tokio::time::Instant::from_std(sfu.poll_timeout());
        tokio::select! {
            _ = shutdown.cancelled() => break,
            read = socket.recv_from(&mut buf) => {
                if let Ok((n, source)) = read {
                    sfu.handle_receive(Instant::now(), source, &buf[..n]);
                    for _ in 1..READ_BATCH {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, source)) => { sfu.handle_receive(Instant::now(), source, &buf[..n]); }
                            Err(_) => break,
                        }
                    }
                }
            }
            command = commands.recv() => match command {
                None => break,
                Some(Command::Signal { from, owner, payload, reply }) => {
                    owners.insert(from, owner);
                    let _ = reply.send(sfu.handle_signal(Instant::now(), from, &payload));
                }
                Some(Command::Leave(who)) => {
                    sfu.leave(Instant::now(), who);
                    owners.remove(&who);
                }
                Some(Command::End(call)) => {
                    sfu.end_call(call);
                    owners.retain(|p, _| p.call != call);
                }
            },
            _ = tokio::time::sleep_until(deadline) => {}
        }
        let now = Instant::now();
        if sfu.poll_timeout() <= now {
            sfu.handle_timeout(now);
        }
        while let Some(out) = sfu.poll_output() {
            match out {
                Output::Transmit {
                    destination,
                    contents,
                    ..
                } => {
                    // A full send buffer drops the datagram, as the network would;
                    // NACK, RTX and keyframe requests recover.
                    let _ = socket.try_send_to(&contents, destination);
                }
                Output::Signal { to, payload } => {
                    if let Some(owner) = owners.get(&to) {
                        let frame = json!({"type": "sfu", "callId": to.call, "payload": payload});
                        app.send_transient(owner, &frame.to_string());
                    }
                }
            }
        }
        if now.duration_since(published) >= std::time::Duration::from_millis(500) {
            published = now;
            *app.sfu.stats.lock().expect("not poisoned") = sfu.stats();
        }
    }
}
