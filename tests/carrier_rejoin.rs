//! Issue 14: carriers that come back. A real server and a real client (4 WebSocket carriers)
//! talk through the chaos relay of `tests/common/chaos.rs`; visitors pull checked bulk
//! transfers through a tcp pull binding while the relay cuts or blackholes one carrier. What is
//! checked is what an operator and a visitor see: which transfers fail and that every other one
//! is byte-exact, the session back at its granted carrier count in the admin API and the
//! metrics, and nothing left behind (streams, carrier slots, tasks, flow-control credit).

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::Value;
use underpass::client::{Binding, ClientOptions, ClientSession};
use underpass::mux::Session;
use underpass::server::{Server, ServerConfig};

const ADMIN: &str = "admin-token-rejoin-0123456";
const MB: u64 = 1 << 20;

/// Server, relay, client with a pull binding to a [`source_server`].
struct Rig {
    pull_addr: SocketAddr,
    _pull: Binding,
    client: ClientSession,
    chaos: Chaos,
    server: Server,
}

async fn rig(
    cfg: impl FnOnce(&mut ServerConfig),
    opts: impl FnOnce(ClientOptions) -> ClientOptions,
) -> Rig {
    let server = server_with(|c| {
        c.admin_token = Some(ADMIN.into());
        cfg(c);
    })
    .await;
    let chaos = Chaos::start(server.local_addr()).await;
    let client = client_with(opts(ClientOptions::new(chaos.url(), TOKEN))).await;
    let source = source_server().await;
    let pull = client.pull(source, 0).await.unwrap();
    let pull_addr = SocketAddr::from(([127, 0, 0, 1], pull.container_port()));
    let rig = Rig {
        pull_addr,
        _pull: pull,
        client,
        chaos,
        server,
    };
    rig.wait_session(|s| s["carriers"] == "4/4").await;
    rig
}

impl Rig {
    /// The session as `GET /sessions` shows it, once `ok` holds for it (within 60 s).
    async fn wait_session(&self, ok: impl Fn(&Value) -> bool) -> Value {
        within(60, async {
            loop {
                let sessions = admin_sessions(self.server.local_addr(), ADMIN).await;
                if let [s] = &sessions[..] {
                    if ok(s) {
                        return s.clone();
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }

    /// Waits until the session shows every carrier up after `n` re-joins in all.
    async fn wait_rejoins(&self, n: u64) -> Value {
        self.wait_session(|s| s["carriers"] == "4/4" && s["carrierRejoins"] == n)
            .await
    }

    fn server_mux(&self) -> Session {
        self.server.sessions().into_iter().next().unwrap().1
    }

    /// Starts a fetch through the pull binding and waits until data flows; returns it with the
    /// carrier its stream is pinned to. Earlier fetches must still be open.
    async fn pinned_fetch(&self, seed: u64, len: u64) -> (Fetch, usize) {
        let mux = self.server_mux();
        let before = mux.inspect(|st| st.streams_per_carrier());
        let mut fetch = Fetch::start(self.pull_addr, seed, len).await.unwrap();
        let early = within(30, fetch.read_until(1)).await;
        assert_eq!(early, None, "fetch {seed} ended before any data");
        let after = mux.inspect(|st| st.streams_per_carrier());
        let carrier = (0..after.len())
            .find(|i| after[*i] > before.get(*i).copied().unwrap_or(0))
            .expect("a new stream on some carrier");
        (fetch, carrier)
    }

    /// Nothing left over once traffic stopped: no streams on either side, still 4 carrier
    /// slots, and the session credit each side may still send equal to what the other side
    /// grants (credit lost with a carrier would show as a difference).
    async fn assert_nothing_leaked(&self) {
        let server = self.server_mux();
        let client = self.client.mux();
        // (streams, session credit we may send, credit the peer may send as we count it)
        let look = |mux: &Session| {
            mux.inspect(|st| {
                (
                    st.stream_count(),
                    st.session_send_credit(),
                    st.session_recv_remaining(),
                )
            })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let (s, c) = loop {
            let (s, c) = (look(&server), look(&client));
            let settled = s.0 == 0 && c.0 == 0 && s.1 == c.2 && c.1 == s.2;
            if settled || tokio::time::Instant::now() > deadline {
                break (s, c);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!((s.0, c.0), (0, 0), "streams left (server, client)");
        assert_eq!(s.1, c.2, "server->client session credit lost");
        assert_eq!(c.1, s.2, "client->server session credit lost");
        assert_eq!(server.inspect(|st| st.carrier_count()), 4);
        assert_eq!(client.inspect(|st| st.carrier_count()), 4);
    }
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_carrier_2_of_4_fails_only_its_streams_and_it_comes_back() {
    let rig = rig(|_| {}, |o| o).await;
    let mut fetches = Vec::new();
    for seed in 0..8 {
        fetches.push(rig.pinned_fetch(seed, 20 * MB).await);
    }
    let on2 = fetches.iter().filter(|(_, c)| *c == 2).count();
    assert!(on2 > 0 && on2 < 8, "streams spread over the carriers");

    rig.chaos.cut(2, Cut::Rst);
    let results = within(
        180,
        futures_util::future::join_all(
            fetches
                .into_iter()
                .map(|(f, carrier)| async move { (carrier, f.finish().await) }),
        ),
    )
    .await;
    for (seed, (carrier, result)) in results.iter().enumerate() {
        if *carrier == 2 {
            assert!(
                matches!(result, Fetched::Failed { got } if *got < 20 * MB),
                "stream {seed} on the cut carrier: {result:?}"
            );
        } else {
            assert_eq!(
                *result,
                Fetched::Complete,
                "stream {seed} on carrier {carrier}"
            );
        }
    }

    // The client re-dials carrier 2: the admin API and the metrics say so.
    let session = rig.wait_rejoins(1).await;
    assert_eq!(session["carrierLosses"], 1, "{session}");
    assert_eq!(session["carriersActive"], 4, "{session}");
    assert_eq!(session["connectionsGranted"], 4, "{session}");
    let metrics = admin_metrics(rig.server.local_addr(), ADMIN).await;
    assert_eq!(metric(&metrics, "underpass_carrier_lost_total"), Some(1.0));
    assert_eq!(
        metric(&metrics, "underpass_carrier_rejoined_total"),
        Some(1.0)
    );
    let id = session["sessionId"].as_str().unwrap();
    assert_eq!(
        metric(
            &metrics,
            &format!("underpass_session_carriers{{session=\"{id}\"}}")
        ),
        Some(4.0)
    );
    assert_eq!(rig.chaos.seen(2), 2, "one re-dial of carrier 2");
    assert_eq!(rig.chaos.seen(0), 1, "no resume: carrier 0 never went away");

    // New streams are pinned to the carrier that came back, and are byte-exact.
    rig.assert_nothing_leaked().await;
    let mut again = Vec::new();
    for seed in 100..104 {
        again.push(rig.pinned_fetch(seed, 2 * MB).await);
    }
    assert!(
        again.iter().any(|(_, c)| *c == 2),
        "nothing pinned to carrier 2"
    );
    for (f, carrier) in again {
        assert_eq!(
            within(60, f.finish()).await,
            Fetched::Complete,
            "carrier {carrier}"
        );
    }
    rig.assert_nothing_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_carrier_cut_five_times_comes_back_each_time_without_leaks() {
    let rig = rig(|_| {}, |o| o).await;
    let baseline = alive_tasks();
    for round in 1..=5u64 {
        rig.assert_nothing_leaked().await;
        let mut fetches = Vec::new();
        for i in 0..4 {
            fetches.push(rig.pinned_fetch(round * 10 + i, 8 * MB).await);
        }
        assert!(
            fetches.iter().any(|(_, c)| *c == 2),
            "round {round}: nothing on carrier 2"
        );
        let how = if round % 2 == 0 { Cut::Fin } else { Cut::Rst };
        rig.chaos.cut(2, how);
        for (f, carrier) in fetches {
            let result = within(60, f.finish()).await;
            if carrier == 2 {
                assert!(
                    matches!(result, Fetched::Failed { .. }),
                    "round {round} ({how:?}): stream on the cut carrier: {result:?}"
                );
            } else {
                assert_eq!(
                    result,
                    Fetched::Complete,
                    "round {round}, carrier {carrier}"
                );
            }
        }
        let session = rig.wait_rejoins(round).await;
        assert_eq!(session["carrierLosses"], round, "{session}");
        assert_eq!(rig.chaos.seen(2), round as usize + 1);
    }

    // Every JOIN carried a ticket of its own: 1 from HELLO_OK, then 5 from TICKET.
    let joins = rig.chaos.joins();
    assert_eq!(joins.iter().filter(|(_, i, _)| *i == 2).count(), 6);
    let nonces: HashSet<&str> = joins.iter().map(|(_, _, n)| n.as_str()).collect();
    assert_eq!(nonces.len(), joins.len(), "a ticket was used twice");
    let metrics = admin_metrics(rig.server.local_addr(), ADMIN).await;
    assert_eq!(metric(&metrics, "underpass_carrier_lost_total"), Some(5.0));
    assert_eq!(
        metric(&metrics, "underpass_carrier_rejoined_total"),
        Some(5.0)
    );
    assert_eq!(rig.chaos.seen(0), 1, "never resumed");

    // No streams, slots, credit or tasks (carrier readers and writers, relay pumps) left over.
    rig.assert_nothing_leaked().await;
    within(60, async {
        while alive_tasks() > baseline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_secondary_carrier_is_detected_and_redialled() {
    let keepalive = (Duration::from_secs(1), Duration::from_secs(3));
    let rig = rig(
        |c| {
            c.limits.ping_after = keepalive.0;
            c.limits.pong_timeout = keepalive.1;
        },
        |o| o.keepalive(keepalive.0, keepalive.1),
    )
    .await;
    let mut fetches = Vec::new();
    for seed in 0..4 {
        fetches.push(rig.pinned_fetch(seed, 8 * MB).await);
    }
    // Nothing closes: only the missing PONG tells either side.
    let held = rig.chaos.blackhole(1);
    for (f, carrier) in fetches {
        let result = within(60, f.finish()).await;
        if carrier == 1 {
            assert!(matches!(result, Fetched::Failed { .. }), "{result:?}");
        } else {
            assert_eq!(result, Fetched::Complete, "carrier {carrier}");
        }
    }
    let session = rig.wait_rejoins(1).await;
    assert_eq!(session["carrierLosses"], 1, "{session}");
    assert_eq!(rig.chaos.seen(1), 2);
    // Both ends gave the silent connection up: their sockets are closed although nothing
    // ever arrived to close them (a stuck reader or writer would hold them).
    assert!(
        held.is_open(),
        "the relay still holds the silent connection"
    );
    within(60, async {
        while !held.peers_closed() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    rig.assert_nothing_leaked().await;
    let mut again = Vec::new();
    for seed in 10..14 {
        again.push(rig.pinned_fetch(seed, MB).await);
    }
    for (f, carrier) in again {
        assert_eq!(
            within(60, f.finish()).await,
            Fetched::Complete,
            "carrier {carrier}"
        );
    }
}
