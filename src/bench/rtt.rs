//! Round-trip time through a tunnel session: mux PING/PONG on carrier 0, as the session itself
//! measures it (timestamps taken by the mux, so the polling below does not skew them).

use std::time::Duration;

use tokio::time::Instant;

use crate::mux::Session;

/// Pings per measurement; the median is reported so one scheduling hiccup does not decide it.
const SAMPLES: usize = 5;
/// How long one ping may take before it is given up on.
const SAMPLE_LIMIT: Duration = Duration::from_secs(2);
/// How often the session is checked for a new measurement.
const POLL_EVERY: Duration = Duration::from_millis(1);

/// Median RTT of a few pings on carrier 0, or `None` if no pong came back in time.
pub async fn measure(session: &Session) -> Option<Duration> {
    let mut samples = Vec::with_capacity(SAMPLES);
    // The session keeps only the last RTT, so a new sample is recognised by a changed value.
    let mut last = session.inspect(|st| st.rtt(0));
    for _ in 0..SAMPLES {
        session.ping(0);
        let deadline = Instant::now() + SAMPLE_LIMIT;
        while Instant::now() < deadline {
            tokio::time::sleep(POLL_EVERY).await;
            let now = session.inspect(|st| st.rtt(0));
            if let Some(rtt) = now.filter(|_| now != last) {
                samples.push(rtt);
                last = now;
                break;
            }
        }
    }
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied()
}
