//! The loads every system under test gets, the same for ours and for the
//! baselines: numbered 256-byte messages sent at a fixed pace (latency) or
//! with a bounded window of unacknowledged messages (throughput), and
//! request round trips, one at a time or many in flight.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::{
    sync::Notify,
    time::{Instant, sleep_until, timeout},
};

/// Size of every room message text, in bytes.
pub(crate) const TEXT_BYTES: usize = 256;
/// How long a run waits for its last messages before counting them lost.
const DRAIN: Duration = Duration::from_secs(10);
/// How long the throughput sender waits for the window to open before it
/// declares the receiver stalled.
const STALL: Duration = Duration::from_secs(5);

const MARK: &[u8] = b"#seq";

/// A message text carrying `seq`, padded to [`TEXT_BYTES`].
pub(crate) fn text(seq: usize) -> String {
    let mut s = format!("#seq{seq:08}|");
    while s.len() < TEXT_BYTES {
        s.push('x');
    }
    s
}

/// The sequence number in anything that contains a [`text`] verbatim (a
/// text, a JSON envelope, a line).
pub(crate) fn seq_of(data: &[u8]) -> Option<usize> {
    let at = data.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let digits = data.get(at..at + 8)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// First arrival time of each numbered message at one receiver.
pub(crate) struct Arrivals {
    times: Mutex<Vec<Option<Instant>>>,
    count: AtomicUsize,
    notify: Notify,
}

impl Arrivals {
    /// Room for sequence numbers `0..cap`; larger ones are ignored.
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Arrivals {
            times: Mutex::new(vec![None; cap]),
            count: AtomicUsize::new(0),
            notify: Notify::new(),
        })
    }

    /// Records an arrival of whatever carries a sequence number.
    pub(crate) fn record(&self, data: &[u8]) {
        let Some(seq) = seq_of(data) else { return };
        let now = Instant::now();
        let Ok(mut times) = self.times.lock() else {
            return;
        };
        if let Some(slot @ None) = times.get_mut(seq) {
            *slot = Some(now);
            self.count.fetch_add(1, Ordering::SeqCst);
            self.notify.notify_one();
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn time(&self, seq: usize) -> Option<Instant> {
        self.times.lock().ok()?.get(seq).copied().flatten()
    }

    /// Waits until `target` messages have arrived; false on timeout.
    pub(crate) async fn wait_count(&self, target: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.count() < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || timeout(left, self.notify.notified()).await.is_err() {
                return self.count() >= target;
            }
        }
        true
    }
}

/// Sends message number `seq`; resolves when the sender's API returned.
pub(crate) type SendFn =
    Box<dyn Fn(usize) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;

/// One sender and the arrivals at its receiver, with the next free
/// sequence number.
pub(crate) struct Link {
    pub(crate) send: SendFn,
    pub(crate) arrivals: Arc<Arrivals>,
    pub(crate) next: usize,
}

/// What a paced run measured.
pub(crate) struct Latencies {
    /// One-way latencies of the messages that arrived, ms.
    pub(crate) ms: Vec<f64>,
    pub(crate) lost: usize,
}

impl Link {
    /// Sends probes until one arrives: the receiver is subscribed (and for
    /// a relay, in the relay's mesh).
    pub(crate) async fn warm_up(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        let before = self.count_now();
        while Instant::now() < deadline {
            let seq = self.take(1);
            // A publish before the peer's subscription is known may fail.
            let _ = (self.send)(seq).await;
            if self
                .arrivals
                .wait_count(before + 1, Duration::from_millis(200))
                .await
            {
                // Let stragglers of the probes land before measuring.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Ok(());
            }
        }
        bail!("no probe arrived within {limit:?}")
    }

    fn count_now(&self) -> usize {
        self.arrivals.count()
    }

    fn take(&mut self, n: usize) -> usize {
        let base = self.next;
        self.next += n;
        base
    }

    /// `n` messages at `rate` per second; one-way latency of each.
    pub(crate) async fn paced(&mut self, n: usize, rate: f64) -> anyhow::Result<Latencies> {
        let before = self.count_now();
        let base = self.take(n);
        let gap = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        let mut sent = Vec::with_capacity(n);
        for i in 0..n {
            sleep_until(start + gap * i as u32).await;
            sent.push(Instant::now());
            (self.send)(base + i).await.context("sending")?;
        }
        self.arrivals.wait_count(before + n, DRAIN).await;
        let mut ms = Vec::with_capacity(n);
        for (i, t) in sent.iter().enumerate() {
            if let Some(got) = self.arrivals.time(base + i) {
                ms.push(got.saturating_duration_since(*t).as_secs_f64() * 1e3);
            }
        }
        let lost = n - ms.len();
        Ok(Latencies { ms, lost })
    }

    /// `n` messages as fast as the receiver keeps up, with at most `window`
    /// sent and not yet arrived; messages per second and the number lost.
    pub(crate) async fn windowed(
        &mut self,
        n: usize,
        window: usize,
    ) -> anyhow::Result<(f64, usize)> {
        let before = self.count_now();
        let base = self.take(n);
        let start = Instant::now();
        for i in 0..n {
            while i >= window && i - (self.count_now() - before) >= window {
                let arrived = self.count_now() - before;
                if !self.arrivals.wait_count(before + arrived + 1, STALL).await {
                    bail!("receiver stalled after {arrived} of {n} messages");
                }
            }
            (self.send)(base + i).await.context("sending")?;
        }
        self.arrivals.wait_count(before + n, DRAIN).await;
        let arrived = (0..n).filter_map(|i| self.arrivals.time(base + i)).max();
        let got = self.count_now() - before;
        let Some(last) = arrived else {
            bail!("nothing arrived");
        };
        let secs = last.saturating_duration_since(start).as_secs_f64();
        Ok((got as f64 / secs.max(1e-9), n.saturating_sub(got)))
    }
}

/// One request and its answer; resolves when the answer is in.
pub(crate) type RoundTrip =
    Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;

/// `n` round trips by `workers` concurrent workers; each one's time, ms.
pub(crate) async fn round_trips(
    trips: &[RoundTrip],
    n: usize,
    limit: Duration,
) -> anyhow::Result<Vec<f64>> {
    let workers = trips.len().max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for (w, trip) in trips.iter().enumerate() {
        let trip = trip.clone();
        let count = n / workers + usize::from(w < n % workers);
        tasks.spawn(async move {
            let mut ms = Vec::with_capacity(count);
            for i in 0..count {
                let t = Instant::now();
                trip(w * 1_000_000 + i).await?;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok(ms)
        });
    }
    let mut all = Vec::with_capacity(n);
    let collected = timeout(limit, async {
        while let Some(done) = tasks.join_next().await {
            all.extend(done??);
        }
        anyhow::Ok(())
    })
    .await;
    match collected {
        Ok(result) => result.map(|()| all),
        Err(_) => bail!("round trips did not finish within {limit:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_carry_their_number() {
        let t = text(42);
        assert_eq!(t.len(), TEXT_BYTES);
        assert_eq!(seq_of(t.as_bytes()), Some(42));
        let json = serde_json::to_vec(&serde_json::json!({ "text": t })).unwrap();
        assert_eq!(seq_of(&json), Some(42));
        assert_eq!(seq_of(b"nothing"), None);
    }
}
