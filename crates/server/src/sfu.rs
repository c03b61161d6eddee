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
/// Datagrams handed to the kernel in one call.
const SEND_BATCH: usize = 64;
/// The socket's send and receive buffers: a keyframe for every receiver of a
/// large call leaves in one burst, and the defaults (208 KiB) dropped some of
/// it. The kernel caps what is asked at `net.core.wmem_max` / `rmem_max`.
const SOCKET_BUFFER: usize = 4 << 20;

enum Command {
    Signal {
        from: PeerId,
        owner: Owner,
        payload: Value,
        reply: oneshot::Sender<Result<(), Refused>>,
    },
    Leave(PeerId),
    End(Uuid),
    /// The node is stopping: every participant is told to offer again (to a live
    /// node), and every session ends.
    Drain(oneshot::Sender<usize>),
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
    /// Set when the node stops: no new session is made here.
    draining: std::sync::atomic::AtomicBool,
    /// How many open microphones a call carries (`CALLHUB_SFU_AUDIBLE`).
    audible: usize,
}

impl SfuNode {
    /// Binds the SFU's UDP socket (port 0: any free port).
    pub fn bind(
        udp: SocketAddr,
        public_ip: Option<IpAddr>,
        audible: usize,
    ) -> anyhow::Result<Self> {
        let socket = StdUdpSocket::bind(udp)
            .map_err(|e| anyhow::anyhow!("the SFU cannot bind UDP {udp} (CALLHUB_SFU_UDP): {e}"))?;
        socket.set_nonblocking(true)?;
        let sock = socket2::SockRef::from(&socket);
        if let Err(e) = sock
            .set_send_buffer_size(SOCKET_BUFFER)
            .and_then(|()| sock.set_recv_buffer_size(SOCKET_BUFFER))
        {
            tracing::warn!(error = %e, "the SFU's socket keeps a default buffer size");
        }
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
            draining: Default::default(),
            audible,
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
    /// ended call frees its memory, on whichever node carries it.
    pub fn call_changed(&self, app: &App, committed: &callhub_store::Committed) {
        let call = &committed.call;
        if call.call_type != CallType::Sfu {
            return;
        }
        let left: Vec<Option<i64>> = if call.status == CallStatus::Ended {
            vec![None]
        } else {
            committed
                .new_events()
                .iter()
                .filter(|e| e.kind == EventType::Leave)
                .map(|e| Some(e.contact))
                .collect()
        };
        for contact in left {
            self.left_here(call.call_id, contact);
            if let Some(bus) = &app.bus {
                bus.sfu_left(app, call.call_id, contact);
            }
        }
    }

    /// A participant left (None: the call ended): its session here, if any, ends.
    pub fn left_here(&self, call: Uuid, contact: Option<i64>) {
        let _ = self.tx.send(match contact {
            Some(contact) => Command::Leave(PeerId { call, contact }),
            None => Command::End(call),
        });
    }

    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn stats(&self) -> Stats {
        *self.stats.lock().expect("not poisoned")
    }
}

/// Hands a participant's `sfu` payload to the SFU that carries its call: this
/// node's, or with several nodes the one recorded with the call (over NATS). A
/// call whose node is gone or stopping is taken over by this node.
pub async fn route(
    app: &Arc<App>,
    from: PeerId,
    owner: Owner,
    payload: Value,
) -> Result<(), String> {
    let Some(bus) = &app.bus else {
        return app.sfu.signal(from, owner, payload).await;
    };
    let home = home(app, bus, from.call).await?;
    tracing::debug!(call = %from.call, contact = from.contact, %home, here = home == bus.node, "sfu payload routed");
    if home == bus.node {
        app.sfu.signal(from, owner, payload).await
    } else {
        bus.sfu(app, home, from, &owner, payload);
        Ok(())
    }
}

/// The node carrying `call`'s media, claiming it for this one when it has none
/// or its node is no longer heard from.
async fn home(app: &App, bus: &crate::bus::Bus, call: Uuid) -> Result<Uuid, String> {
    let current = app.store.sfu_node(call).await.map_err(|e| e.to_string())?;
    if let Some(id) = current.as_deref().and_then(|n| n.parse::<Uuid>().ok())
        && bus.node_alive(id)
        && !(id == bus.node && app.sfu.draining())
    {
        return Ok(id);
    }
    if app.sfu.draining() {
        return Err("this node is stopping: offer again in a moment".into());
    }
    let holder = app
        .store
        .claim_sfu_node(call, &bus.node.to_string(), current.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    if holder != bus.node.to_string() {
        tracing::debug!(%call, %holder, "another node took the SFU call first");
    }
    holder
        .parse()
        .map_err(|_| format!("the call's SFU node {holder:?} is not a node id"))
}

/// On SIGTERM: no new sessions here; the node's calls are given up in the store
/// (a live node takes each over at its next offer), and every participant of
/// this SFU is told to offer again (`{"restart": true}`). Answers how many.
pub async fn drain(app: &Arc<App>) -> usize {
    app.sfu
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(bus) = &app.bus
        && let Err(e) = app.store.release_sfu_node(&bus.node.to_string()).await
    {
        tracing::warn!(error = %e, "giving up this node's SFU calls failed; other nodes take them over once it is gone");
    }
    let (tx, rx) = oneshot::channel();
    if app.sfu.tx.send(Command::Drain(tx)).is_err() {
        return 0;
    }
    rx.await.unwrap_or(0)
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
    let mut sfu =
        Sfu::new(app.sfu.local, app.sfu.candidate, Instant::now()).with_audible(app.sfu.audible);
    let mut owners: HashMap<PeerId, Owner> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    let mut published = Instant::now();
    let mut batch: Vec<(SocketAddr, Vec<u8>)> = Vec::with_capacity(SEND_BATCH);
    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(sfu.poll_timeout()));
    tokio::pin!(sleep);
    loop {
        sleep
            .as_mut()
            .reset(tokio::time::Instant::from_std(sfu.poll_timeout()));
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
                Some(Command::Drain(done)) => {
                    let told = owners.len();
                    for (who, owner) in owners.drain() {
                        let frame = json!({"type": "sfu", "callId": who.call, "payload": {"restart": true}});
                        app.send_transient(&owner, &frame.to_string());
                        sfu.end_call(who.call);
                    }
                    tracing::info!(participants = told, "SFU drained: its participants offer again elsewhere");
                    let _ = done.send(told);
                }
            },
            _ = &mut sleep => {}
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
                    batch.push((destination, contents));
                    if batch.len() == SEND_BATCH {
                        sfu.dropped(send_batch(&socket, &mut batch));
                    }
                }
                Output::Signal { to, payload } => {
                    if let Some(owner) = owners.get(&to) {
                        let frame = json!({"type": "sfu", "callId": to.call, "payload": payload});
                        app.send_transient(owner, &frame.to_string());
                    }
                }
            }
        }
        sfu.dropped(send_batch(&socket, &mut batch));
        if now.duration_since(published) >= std::time::Duration::from_millis(500) {
            published = now;
            *app.sfu.stats.lock().expect("not poisoned") = sfu.stats();
        }
    }
}

/// Sends and empties `batch`; answers how many were dropped. A full send buffer
/// drops what is left, as the network would; NACK, RTX and keyframe requests
/// recover.
fn send_batch(socket: &tokio::net::UdpSocket, batch: &mut Vec<(SocketAddr, Vec<u8>)>) -> u64 {
    let mut at = 0;
    let mut dropped = 0;
    while at < batch.len() {
        match socket.try_io(tokio::io::Interest::WRITABLE, || {
            send_many(socket, &batch[at..])
        }) {
            Ok(sent) => at += sent.max(1),
            // A datagram the kernel refuses (an unreachable address) is skipped.
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                at += 1;
                dropped += 1;
            }
            Err(_) => {
                dropped += (batch.len() - at) as u64;
                break;
            }
        }
    }
    batch.clear();
    dropped
}

/// One `sendmmsg` for many datagrams: at tens of thousands a second, a
/// `sendto` each was a large share of the SFU's time. Answers how many went.
#[cfg(target_os = "linux")]
fn send_many(
    socket: &tokio::net::UdpSocket,
    datagrams: &[(SocketAddr, Vec<u8>)],
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let addrs: Vec<socket2::SockAddr> = datagrams
        .iter()
        .map(|(a, _)| socket2::SockAddr::from(*a))
        .collect();
    let mut iovs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|(_, d)| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = addrs
        .iter()
        .zip(iovs.iter_mut())
        .map(|(addr, iov)| {
            // SAFETY: an all-zero msghdr is valid (no name, no control data);
            // the fields set below point into `addrs` and `iovs`, which outlive
            // the call.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = addr.as_ptr() as *mut libc::c_void;
            h.msg_namelen = addr.len();
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            }
        })
        .collect();
    // SAFETY: `headers` holds `headers.len()` initialised mmsghdr whose
    // pointers are valid for the duration of the call; the fd is the socket's.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            headers.len() as libc::c_uint,
            0,
        )
    };
    if sent < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

#[cfg(not(target_os = "linux"))]
fn send_many(
    socket: &tokio::net::UdpSocket,
    datagrams: &[(SocketAddr, Vec<u8>)],
) -> std::io::Result<usize> {
    let (destination, contents) = &datagrams[0];
    socket.try_send_to(contents, *destination).map(|_| 1)
}
