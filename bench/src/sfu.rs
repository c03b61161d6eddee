//! SFU load: N scripted str0m participants in one call, each sending a looped VP8
//! clip and Opus-sized audio, everyone receiving everyone (N×(N-1) fan-out), through
//! callhub's SFU (`sfu`) or Janus VideoRoom (`janus`, see janus.rs). One JSON line:
//! forwarded datagrams per server CPU-second, bytes, loss, frames, memory.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::sockets::open_socket;
use crate::stats::{create_call, read_tokens};
use callhub_sfu::client::{Clip, Participant};

/// What both servers' runs take.
#[derive(clap::Args, Clone)]
pub struct Load {
    #[arg(long)]
    pub participants: usize,
    /// The measured window, after everyone sees everyone.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value = "bench/media/clip.ivf")]
    pub clip: PathBuf,
    /// The address the participants' UDP sockets bind (one the server's candidate
    /// is reachable from).
    #[arg(long, default_value = "127.0.0.1")]
    pub local_ip: IpAddr,
    /// The server's process, for its CPU time and RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// How long everyone may take to see everyone before the window starts anyway.
    #[arg(long, default_value_t = 30)]
    pub connect_secs: u64,
    /// How many participants (the last ones) have their microphone muted: they
    /// send digital silence (-127 dBov), as a browser does; the others an open
    /// microphone in a quiet room (-70 dBov).
    #[arg(long, default_value_t = 0)]
    pub muted: usize,
}

impl Load {
    /// Participant `i` of this load, sending the clip.
    pub fn sender(&self, i: usize, local: SocketAddr, clip: Arc<Clip>) -> (Participant, Value) {
        let (mut p, offer) = Participant::new(local, Instant::now(), Some(clip));
        p.muted = i + self.muted >= self.participants;
        (p, offer)
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    url: String,
    /// The tokens file `setup` wrote (at least `--participants` users).
    #[arg(long)]
    tokens: PathBuf,
    #[command(flatten)]
    load: Load,
}

/// One str0m peer driven by its own task over its own UDP socket; the bench reads
/// its counters through the lock.
pub struct Leg {
    pub peer: Arc<Mutex<Participant>>,
    pub datagrams_in: Arc<AtomicU64>,
    pub bytes_in: Arc<AtomicU64>,
    pub datagrams_out: Arc<AtomicU64>,
    pub signals: mpsc::UnboundedSender<Value>,
}

/// Binds a socket at `ip`, makes the peer with `make(local)` and drives it until
/// `stop`; payloads the peer answers go to `answers` tagged with `tag`.
pub async fn spawn_leg<T: Clone + Send + 'static>(
    ip: IpAddr,
    make: impl FnOnce(SocketAddr) -> Participant,
    tag: T,
    answers: mpsc::UnboundedSender<(T, Value)>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Leg> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let local = socket.local_addr()?;
    stamp_arrivals(&socket)?;
    let peer = Arc::new(Mutex::new(make(local)));
    let (signals, mut signal_rx) = mpsc::unbounded_channel::<Value>();
    let datagrams_in = Arc::new(AtomicU64::new(0));
    let bytes_in = Arc::new(AtomicU64::new(0));
    let datagrams_out = Arc::new(AtomicU64::new(0));
    let sent = datagrams_out.clone();
    let leg = Leg {
        datagrams_out,
        peer: peer.clone(),
        datagrams_in: datagrams_in.clone(),
        bytes_in: bytes_in.clone(),
        signals,
    };
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let mut out = Vec::new();
        loop {
            let deadline = peer
                .lock()
                .expect("not poisoned")
                .poll(Instant::now(), &mut out);
            for (to, bytes) in out.drain(..) {
                sent.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = socket.send_to(&bytes, to).await {
                    eprintln!("{local} -> {to}: {e}");
                }
            }
            tokio::select! {
                ready = socket.readable() => {
                    if ready.is_err() { continue }
                    let mut p = peer.lock().expect("not poisoned");
                    let (mut count, mut bytes) = (0, 0);
                    // Whatever is queued, before polling again, each datagram at
                    // the time the kernel received it: the bench's receivers share
                    // two cores with the server, and stamping a datagram when this
                    // task got round to it would show their scheduling delay to the
                    // SFU's congestion control as network delay.
                    for _ in 0..64 {
                        match socket.try_io(tokio::io::Interest::READABLE, || recv_stamped(&socket, &mut buf)) {
                            Ok((n, from, at)) => {
                                count += 1;
                                bytes += n as u64;
                                p.receive(at, from, local, &buf[..n]);
                            }
                            Err(_) => break,
                        }
                    }
                    datagrams_in.fetch_add(count, Ordering::Relaxed);
                    bytes_in.fetch_add(bytes, Ordering::Relaxed);
                }
                signal = signal_rx.recv() => {
                    let Some(signal) = signal else { break };
                    let answered = peer.lock().expect("not poisoned").signal(&signal);
                    match answered {
                        Ok(Some(answer)) => { let _ = answers.send((tag.clone(), answer)); }
                        Ok(None) => {}
                        Err(e) => eprintln!("a participant refused a payload: {e}"),
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = stop.changed() => break,
            }
        }
    });
    Ok(leg)
}

/// Counters of every leg at one moment.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub at: Option<Instant>,
    pub datagrams: u64,
    pub bytes: u64,
    /// (receiver, sender contact) → video frames, audio frames, media bytes.
    pub received: HashMap<(usize, i64), (u64, u64, u64)>,
    /// sender index → video frames sent.
    pub video_sent: Vec<u64>,
    pub generator_cpu: Option<f64>,
    pub server_cpu: Option<f64>,
}

/// The legs of one bench participant: where it sends and where it receives (the
/// same leg on callhub, two on Janus), and its contact id as receivers see it.
pub struct Member {
    pub contact: i64,
    pub sender: usize,
    pub receivers: Vec<usize>,
}

pub fn snapshot(legs: &[Leg], members: &[Member], server_pid: Option<u32>) -> Snapshot {
    let mut s = Snapshot {
        at: Some(Instant::now()),
        generator_cpu: cpu_secs(std::process::id()),
        server_cpu: server_pid.and_then(cpu_secs),
        ..Default::default()
    };
    for leg in legs {
        s.datagrams += leg.datagrams_in.load(Ordering::Relaxed);
        s.bytes += leg.bytes_in.load(Ordering::Relaxed);
    }
    for (i, m) in members.iter().enumerate() {
        s.video_sent
            .push(legs[m.sender].peer.lock().expect("not poisoned").video_sent);
        for &r in &m.receivers {
            let p = legs[r].peer.lock().expect("not poisoned");
            for (&from, got) in &p.received {
                let e = s.received.entry((i, from)).or_default();
                e.0 += got.video_frames;
                e.1 += got.audio_frames;
                e.2 += got.bytes;
            }
        }
    }
    s
}

/// Whether every member has video from every other.
pub fn everyone_sees_everyone(legs: &[Leg], members: &[Member]) -> bool {
    pairs(legs, members).0 == 0
}

/// Pairs (receiver, sender) without any video yet, and pairs whose first video
/// frame was not a keyframe (a decoder could not have started there).
fn pairs(legs: &[Leg], members: &[Member]) -> (usize, usize) {
    let (mut none, mut not_key) = (0, 0);
    for (i, m) in members.iter().enumerate() {
        for (j, other) in members.iter().enumerate() {
            if i == j {
                continue;
            }
            let first = m.receivers.iter().find_map(|&r| {
                let p = legs[r].peer.lock().expect("not poisoned");
                p.received
                    .get(&other.contact)
                    .filter(|got| got.video_frames > 0)
                    .map(|got| got.started_at_keyframe)
            });
            match first {
                None => none += 1,
                Some(Some(false)) => not_key += 1,
                Some(_) => {}
            }
        }
    }
    (none, not_key)
}

/// Waits until everyone sees everyone (or `connect_secs`), measures `seconds`,
/// and answers the figures both servers share.
pub async fn measure(
    load: &Load,
    legs: &[Leg],
    members: &[Member],
    begun: Instant,
    rss_before: Option<u64>,
    server_stats: impl AsyncFn() -> Option<(u64, u64, u64, u64)>,
) -> Value {
    let limit = begun + Duration::from_secs(load.connect_secs);
    while !everyone_sees_everyone(legs, members) && Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = everyone_sees_everyone(legs, members);
    let connect_secs = begun.elapsed().as_secs_f64();
    let legs_connected = legs
        .iter()
        .filter(|l| l.peer.lock().expect("not poisoned").rtc.is_connected())
        .count();
    // A second for the keyframe bursts of the last joins to pass.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_loaded = load.server_pid.and_then(rss_kib);
    let (a, sa, udp_a) = (
        snapshot(legs, members, load.server_pid),
        server_stats().await,
        udp_buffer_errors(),
    );
    tokio::time::sleep(Duration::from_secs(load.seconds)).await;
    let (b, sb, udp_b) = (
        snapshot(legs, members, load.server_pid),
        server_stats().await,
        udp_buffer_errors(),
    );
    let udp_errors = udp_b.zip(udp_a).map(|(b, a)| (b.0 - a.0, b.1 - a.1));
    let secs = b.at.zip(a.at).map_or(0.0, |(b, a)| (b - a).as_secs_f64());
    let n = members.len();
    let datagrams = b.datagrams - a.datagrams;
    let server_cpu = b.server_cpu.zip(a.server_cpu).map(|(b, a)| b - a);
    let generator_cpu = b.generator_cpu.zip(a.generator_cpu).map(|(b, a)| b - a);
    // Loss: per receiver and sender, video frames received against frames sent.
    let mut frames = vec![vec![0u64; n]; n];
    let (mut expected, mut got, mut media_bytes, mut audio) = (0u64, 0u64, 0u64, 0u64);
    for (i, _) in members.iter().enumerate() {
        for (j, sender) in members.iter().enumerate() {
            if i == j {
                continue;
            }
            let after = b
                .received
                .get(&(i, sender.contact))
                .copied()
                .unwrap_or_default();
            let before = a
                .received
                .get(&(i, sender.contact))
                .copied()
                .unwrap_or_default();
            let v = after.0 - before.0;
            frames[i][j] = v;
            got += v;
            audio += after.1 - before.1;
            media_bytes += after.2 - before.2;
            expected += b.video_sent[j] - a.video_sent[j];
        }
    }
    let per_receiver: Vec<u64> = frames.iter().map(|r| r.iter().sum()).collect();
    let (pairs_without_video, pairs_first_not_keyframe) = pairs(legs, members);
    let loss = if expected > 0 {
        ((1.0 - got as f64 / expected as f64) * 10000.0).round() / 10000.0
    } else {
        0.0
    };
    let server = match (sa, sb) {
        (Some(a), Some(b)) => json!({
            "server_datagrams_sent": b.0 - a.0,
            "server_frames_forwarded": b.1 - a.1,
            "server_bytes_sent": b.2 - a.2,
            "server_datagrams_dropped": b.3 - a.3,
            "server_datagrams_per_s": ((b.0 - a.0) as f64 / secs).round(),
            "server_datagrams_per_server_cpu_sec": server_cpu.map(|c| ((b.0 - a.0) as f64 / c).round()),
        }),
        _ => json!({}),
    };
    let mut v = json!({
        "participants": n,
        "muted": load.muted,
        "connected": connected,
        "connect_secs": (connect_secs * 10.0).round() / 10.0,
        "peers": legs.len(),
        "peers_connected": legs_connected,
        "pairs_without_video": pairs_without_video,
        "pairs_first_not_keyframe": pairs_first_not_keyframe,
        "secs": (secs * 100.0).round() / 100.0,
        "datagrams_received": datagrams,
        "datagrams_per_s": (datagrams as f64 / secs).round(),
        "udp_bytes_received": b.bytes - a.bytes,
        "udp_mbit_per_s": ((b.bytes - a.bytes) as f64 * 8.0 / secs / 1e4).round() / 100.0,
        "media_bytes_received": media_bytes,
        "server_cpu_secs": server_cpu.map(|c| (c * 100.0).round() / 100.0),
        "datagrams_per_server_cpu_sec": server_cpu.map(|c| (datagrams as f64 / c).round()),
        "generator_cpu_secs": generator_cpu.map(|c| (c * 100.0).round() / 100.0),
        "video_frames_expected": expected,
        "video_frames_received": got,
        "audio_frames_received": audio,
        "video_loss": loss,
        "frames_per_receiver_min": per_receiver.iter().min(),
        "frames_per_receiver_max": per_receiver.iter().max(),
        "frames_per_pair_min": frames.iter().enumerate().flat_map(|(i, r)| r.iter().enumerate().filter(move |(j, _)| *j != i).map(|(_, v)| *v)).min(),
        "frames_matrix": frames,
        "rss_before_kib": rss_before,
        "rss_loaded_kib": rss_loaded,
        "kib_per_participant": rss_before.zip(rss_loaded).map(|(a, b)| ((b as f64 - a as f64) / n as f64 * 10.0).round() / 10.0),
        // Datagrams the kernel dropped in this network namespace (the server's
        // socket and the participants') because a socket's buffer was full.
        "udp_rcvbuf_errors": udp_errors.map(|e| e.0),
        "udp_sndbuf_errors": udp_errors.map(|e| e.1),
        "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
    });
    if let (Some(o), Value::Object(s)) = (v.as_object_mut(), server) {
        o.extend(s);
    }
    v
}

/// Asks the kernel to stamp each datagram `socket` receives (`SO_TIMESTAMPNS`).
fn stamp_arrivals(socket: &UdpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid fd and an int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reads one datagram and when the kernel received it (now, without a stamp).
fn recv_stamped(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, Instant)> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero sockaddr_storage is valid (family AF_UNSPEC).
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at live buffers of the sizes it names.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let now = Instant::now();
    let mut at = now;
    // SAFETY: CMSG_* walk the control buffer the kernel filled, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let stamp =
                    std::time::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
                let age = std::time::SystemTime::now()
                    .duration_since(stamp)
                    .unwrap_or_default();
                at = now.checked_sub(age).unwrap_or(now);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    // SAFETY: the kernel wrote a socket address of the family it names.
    let from = unsafe {
        match addr.ss_family as libc::c_int {
            libc::AF_INET => {
                let a: libc::sockaddr_in =
                    std::ptr::read((&addr as *const libc::sockaddr_storage).cast());
                SocketAddr::from((
                    u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                    u16::from_be(a.sin_port),
                ))
            }
            libc::AF_INET6 => {
                let a: libc::sockaddr_in6 =
                    std::ptr::read((&addr as *const libc::sockaddr_storage).cast());
                SocketAddr::from((a.sin6_addr.s6_addr, u16::from_be(a.sin6_port)))
            }
            _ => return Err(std::io::Error::other("a datagram from a non-IP address")),
        }
    };
    Ok((n as usize, from, at))
}

/// The UDP `RcvbufErrors` and `SndbufErrors` of this network namespace.
fn udp_buffer_errors() -> Option<(u64, u64)> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (udp.next()?, udp.next()?);
    let field = |name: &str| {
        let i = names.split_whitespace().position(|n| n == name)?;
        values.split_whitespace().nth(i)?.parse::<u64>().ok()
    };
    Some((field("RcvbufErrors")?, field("SndbufErrors")?))
}

pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn read_clip(path: &std::path::Path) -> anyhow::Result<Arc<Clip>> {
    let bytes = std::fs::read(path)?;
    Ok(Arc::new(
        Clip::from_ivf(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
    ))
}

/// callhub's SFU counters from /metrics: datagrams sent, frames forwarded, bytes sent.
async fn sfu_metrics(client: &reqwest::Client, url: &str) -> Option<(u64, u64, u64, u64)> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let find = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
    };
    Some((
        find("callhub_sfu_datagrams_sent_total").unwrap_or(0),
        find("callhub_sfu_frames_forwarded_total").unwrap_or(0),
        find("callhub_sfu_bytes_sent_total").unwrap_or(0),
        find("callhub_sfu_datagrams_dropped_total").unwrap_or(0),
    ))
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let load = &a.load;
    let n = load.participants;
    anyhow::ensure!(n >= 2, "an SFU call needs two participants");
    let tokens = read_tokens(&a.tokens)?;
    anyhow::ensure!(tokens.len() >= n, "sfu needs {n} users");
    let users = &tokens[..n];
    let clip = read_clip(&load.clip)?;
    let client = reqwest::Client::new();
    let rss_before = load.server_pid.and_then(rss_kib);
    let begun = Instant::now();

    let invited: Vec<Value> = users[1..]
        .iter()
        .map(|u| json!({"userDbId": u.0}))
        .collect();
    let body = json!({"callTitle": format!("sfu bench {n}"), "callType": "SFU", "invitedContacts": invited});
    let log: Value = create_call(&client, &a.url, &users[0].2, body.to_string())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let call_id = log["callId"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("createCall answered no callId: {log}"))?
        .to_owned();

    let (stop, stopped) = watch::channel(false);
    let (answers, mut answer_rx) = mpsc::unbounded_channel::<(usize, Value)>();
    let mut legs = vec![];
    let mut members = vec![];
    let mut writers = vec![];
    for (i, (_, _, token)) in users.iter().enumerate() {
        let joined: Value = client
            .post(format!("{}/rtc/joinCall?callId={call_id}", a.url))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let contact = joined["media"]["contactId"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("joinCall answered no contactId: {joined}"))?;
        let ws = open_socket(&a.url, token, "127.0.0.1".parse()?).await?;
        let (mut write, mut read) = ws.split();
        let (frames, mut frame_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(f) = frame_rx.recv().await {
                if write.send(Message::text(f)).await.is_err() {
                    break;
                }
            }
        });
        let clip = clip.clone();
        let mut offer = Value::Null;
        let leg = spawn_leg(
            load.local_ip,
            |local| {
                let (p, o) = load.sender(i, local, clip);
                offer = o;
                p
            },
            i,
            answers.clone(),
            stopped.clone(),
        )
        .await?;
        let signals = leg.signals.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = read.next().await {
                let Message::Text(t) = m else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                match v["type"].as_str() {
                    Some("sfu") => {
                        let _ = signals.send(v["payload"].clone());
                    }
                    Some("error") => eprintln!("participant {i}: {v}"),
                    _ => {}
                }
            }
        });
        let frame = json!({"type": "sfu", "callId": call_id, "payload": offer});
        frames.send(frame.to_string())?;
        writers.push(frames);
        legs.push(leg);
        members.push(Member {
            contact,
            sender: i,
            receivers: vec![i],
        });
    }
    let call = call_id.clone();
    tokio::spawn(async move {
        while let Some((i, payload)) = answer_rx.recv().await {
            let frame = json!({"type": "sfu", "callId": call, "payload": payload});
            let _ = writers[i].send(frame.to_string());
        }
    });

    let url = a.url.clone();
    let figures = measure(load, &legs, &members, begun, rss_before, async || {
        sfu_metrics(&client, &url).await
    })
    .await;
    let _ = stop.send(true);
    let mut out = json!({"bench": "sfu", "server": "callhub"});
    if let (Some(o), Value::Object(f)) = (out.as_object_mut(), figures) {
        o.extend(f);
    }
    println!("{out}");
    for (_, _, token) in users {
        let _ = client
            .post(format!("{}/rtc/leaveCall?callId={call_id}", a.url))
            .bearer_auth(token)
            .send()
            .await;
    }
    Ok(())
}
