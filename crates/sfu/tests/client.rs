//! The scripted participant (`callhub_sfu::client`) that the server's tests and
//! the load generator use, driven against the SFU core in simulated time.
//!
//! It reads its socket as they do: whatever has arrived, all at once, then
//! polls. A datagram handed to str0m takes effect only as its output is polled
//! (the one that completes DTLS sets the SRTP keys then), so media in the same
//! batch as that datagram must still be received.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callhub_sfu::client::Participant;
use callhub_sfu::{Output, PeerId, Sfu};
use uuid::Uuid;

const SFU: &str = "10.0.0.1:50000";
const LATENCY: Duration = Duration::from_millis(5);

struct Client {
    contact: i64,
    addr: SocketAddr,
    p: Participant,
    /// How often it reads its socket, and when it last did.
    reads_every: Duration,
    read_at: Instant,
}

impl Client {
    fn reads(&self, now: Instant) -> bool {
        now >= self.read_at + self.reads_every
    }
}

struct World {
    now: Instant,
    call: Uuid,
    sfu: Sfu,
    clients: Vec<Client>,
    /// In flight: when it arrives, from, to, bytes.
    wire: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
}

impl World {
    fn new() -> Self {
        let now = Instant::now();
        let sfu: SocketAddr = SFU.parse().unwrap();
        Self {
            now,
            call: Uuid::new_v4(),
            sfu: Sfu::new(sfu, sfu, now),
            clients: vec![],
            wire: VecDeque::new(),
        }
    }

    fn join(&mut self, contact: i64, reads_every: Duration) {
        let addr: SocketAddr = format!("10.0.1.{contact}:4000").parse().unwrap();
        let (p, offer) = Participant::new(addr, self.now, None);
        self.clients.push(Client {
            contact,
            addr,
            p,
            reads_every,
            read_at: self.now,
        });
        let peer = PeerId {
            call: self.call,
            contact,
        };
        self.sfu.handle_signal(self.now, peer, &offer).unwrap();
        self.pump_sfu();
    }

    fn pump_sfu(&mut self) {
        let from: SocketAddr = SFU.parse().unwrap();
        let mut signals = vec![];
        while let Some(out) = self.sfu.poll_output() {
            match out {
                Output::Transmit {
                    destination,
                    contents,
                    ..
                } => self.send(from, destination, contents.to_vec()),
                Output::Signal { to, payload } => signals.push((to, payload)),
            }
        }
        for (to, payload) in signals {
            let c = self
                .clients
                .iter_mut()
                .find(|c| c.contact == to.contact)
                .expect("a client of the test");
            if let Some(answer) = c.p.signal(&payload).unwrap() {
                self.sfu.handle_signal(self.now, to, &answer).unwrap();
                self.pump_sfu();
            }
        }
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let at = self.now + LATENCY;
        let i = self.wire.partition_point(|(t, ..)| *t <= at);
        self.wire.insert(i, (at, from, to, bytes));
    }

    fn tick(&mut self) {
        let now = self.now;
        let sfu: SocketAddr = SFU.parse().unwrap();
        // The SFU takes each datagram as it arrives.
        let mut held = VecDeque::new();
        while let Some((at, from, to, bytes)) = self.wire.pop_front() {
            if at > now {
                held.push_back((at, from, to, bytes));
                continue;
            }
            if to == sfu {
                self.sfu.handle_receive(now, from, &bytes);
                self.pump_sfu();
                continue;
            }
            let c = self.clients.iter_mut().find(|c| c.addr == to).unwrap();
            if !c.reads(now) {
                held.push_back((at, from, to, bytes)); // not read yet
                continue;
            }
            c.p.receive(now, from, to, &bytes);
        }
        self.wire = held;
        if self.sfu.poll_timeout() <= now {
            self.sfu.handle_timeout(now);
            self.pump_sfu();
        }
        // A client polls when it has read its socket.
        let mut out = vec![];
        for c in self.clients.iter_mut().filter(|c| c.reads(now)) {
            c.read_at = now;
            let mut sent = vec![];
            c.p.poll(now, &mut sent);
            out.extend(sent.into_iter().map(|(to, bytes)| (c.addr, to, bytes)));
        }
        for (from, to, bytes) in out {
            self.send(from, to, bytes);
        }
    }

    fn participant(&self, contact: i64) -> &Participant {
        &self
            .clients
            .iter()
            .find(|c| c.contact == contact)
            .unwrap()
            .p
    }
}

/// Bob reads his socket now and then; Alice joins a little after him, so that
/// her first keyframe reaches the SFU about when Bob's DTLS ends. Whichever
/// read of Bob's that keyframe lands in, he must see her from it.
#[test]
fn media_in_the_same_read_as_the_end_of_dtls_is_received_from_its_keyframe() {
    for reads_every in [20, 50] {
        for offset in (0..=150).step_by(5) {
            let mut w = World::new();
            w.join(2, Duration::from_millis(reads_every));
            for _ in 0..offset {
                w.now += Duration::from_millis(1);
                w.tick();
            }
            w.join(1, Duration::from_millis(1));
            let began = w.now;
            while w.now < began + Duration::from_secs(5)
                && !(w.participant(2).sees(1) && w.participant(1).sees(2))
            {
                w.now += Duration::from_millis(1);
                w.tick();
            }
            for (me, other) in [(1, 2), (2, 1)] {
                let p = w.participant(me);
                assert!(
                    p.sees(other),
                    "Bob reading every {reads_every} ms, Alice {offset} ms after him: \
                     {me} does not see {other} from a keyframe within 5 s: {:?}",
                    p.received.get(&other)
                );
            }
        }
    }
}
