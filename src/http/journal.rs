//! The event stream's memory: the sidecar numbers every node event and
//! keeps the last [`JOURNAL_CAP`], so that a client that lost its
//! connection and comes back with `Last-Event-ID` gets what it missed
//! instead of a silent gap. An id is `<run>-<n>`: the run tells this
//! process's numbers from a previous one's, which restarted at 1. A client
//! whose id is no longer held (or is another run's) first gets a `reset`
//! event: what it holds may be stale, it should reload (history, rooms)
//! and go on.
//!
//! [`Journal`] decides (no I/O, tested alone); [`record`] feeds it from
//! the node.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::broadcast;

use crate::node::{Event, Events};

/// Events kept for clients that reconnect.
pub(crate) const JOURNAL_CAP: usize = 4096;

/// One event: its id (`<run>-<n>`) and its JSON text.
pub(crate) type Entry = (String, Arc<str>);

/// What a client coming back gets before the live stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// The events after its last one.
    Missed(Vec<Entry>),
    /// Its last id is not held: a `reset` first, then every event held.
    Reset(Vec<Entry>),
}

/// The last [`JOURNAL_CAP`] events, numbered from 1, and the live feed of
/// new ones.
#[derive(Debug)]
pub(crate) struct Journal {
    run: String,
    kept: VecDeque<(u64, Arc<str>)>,
    next: u64,
    cap: usize,
    live: broadcast::Sender<Entry>,
}

impl Journal {
    /// An empty journal keeping `cap` events.
    pub(crate) fn new(cap: usize) -> Self {
        Journal {
            run: ulid::Ulid::new().to_string(),
            kept: VecDeque::with_capacity(cap.min(JOURNAL_CAP)),
            next: 1,
            cap: cap.max(1),
            live: broadcast::channel(cap.max(1)).0,
        }
    }

    /// Numbers and keeps one event, and sends it to live streams.
    pub(crate) fn push(&mut self, json: Arc<str>) -> u64 {
        let seq = self.next;
        self.next += 1;
        if self.kept.len() == self.cap {
            self.kept.pop_front();
        }
        self.kept.push_back((seq, json.clone()));
        // No live stream is not an error.
        let _ = self.live.send((self.id(seq), json));
        seq
    }

    fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.run)
    }

    fn entries_after(&self, after: u64) -> Vec<Entry> {
        self.kept
            .iter()
            .filter(|(seq, _)| *seq > after)
            .map(|(seq, json)| (self.id(*seq), json.clone()))
            .collect()
    }

    /// What a client whose last event was `last` has missed; None if it
    /// gave no id (a new client: live events only).
    pub(crate) fn since(&self, last: Option<&str>) -> Option<Replay> {
        let last = last?;
        let newest = self.next - 1;
        let oldest = self.kept.front().map_or(self.next, |(seq, _)| *seq);
        let ours = last
            .trim()
            .rsplit_once('-')
            .filter(|(run, _)| *run == self.run)
            .and_then(|(_, n)| n.parse::<u64>().ok());
        match ours {
            // Held, or just before the oldest held: nothing was lost.
            Some(id) if id <= newest && id + 1 >= oldest => {
                Some(Replay::Missed(self.entries_after(id)))
            }
            _ => Some(Replay::Reset(self.entries_after(0))),
        }
    }

    /// The live feed from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Entry> {
        self.live.subscribe()
    }
}

/// The shared journal and a subscription taken under its lock, with the
/// replay: nothing falls between the two, nothing comes twice.
pub(crate) fn open(
    journal: &Mutex<Journal>,
    last: Option<&str>,
) -> (Option<Replay>, broadcast::Receiver<Entry>) {
    let journal = journal.lock().unwrap_or_else(PoisonError::into_inner);
    (journal.since(last), journal.subscribe())
}

/// Feeds the journal from the node's events until the node stops.
pub(crate) async fn record(mut events: Events, journal: Arc<Mutex<Journal>>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(n)) => Event::Error {
                message: format!("the event stream fell behind: {n} events were not kept"),
            },
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let json: Arc<str> = match serde_json::to_string(&event) {
            Ok(json) => json.into(),
            Err(e) => {
                tracing::warn!(error = %e, "unencodable event");
                continue;
            }
        };
        journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(json);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(n: u64, cap: usize) -> Journal {
        let mut j = Journal::new(cap);
        for i in 1..=n {
            j.push(format!("e{i}").into());
        }
        j
    }

    fn seqs(entries: &[Entry]) -> Vec<u64> {
        entries
            .iter()
            .map(|(id, _)| id.rsplit_once('-').expect("run-n").1.parse().expect("n"))
            .collect()
    }

    #[test]
    fn a_client_gets_what_followed_its_last_event() {
        let j = journal(10, 4);
        let id = |n: u64| j.id(n);
        assert_eq!(j.since(None), None, "a new client: live only");
        assert_eq!(
            j.since(Some(&id(8))),
            Some(Replay::Missed(vec![
                (id(9), "e9".into()),
                (id(10), "e10".into())
            ]))
        );
        assert_eq!(j.since(Some(&id(10))), Some(Replay::Missed(vec![])));
        // The oldest held is 7: a client at 6 lost nothing.
        assert!(
            matches!(j.since(Some(&id(6))), Some(Replay::Missed(e)) if seqs(&e) == [7, 8, 9, 10])
        );
    }

    #[test]
    fn an_id_not_held_gets_a_reset_then_everything_held() {
        let j = journal(10, 4);
        // A previous run's numbers restarted at 1: never taken for ours.
        let before_restart = journal(10, 4).id(8);
        for last in [
            j.id(5),
            j.id(11),
            before_restart,
            "8".into(),
            "banana".into(),
            String::new(),
        ] {
            assert!(
                matches!(j.since(Some(&last)), Some(Replay::Reset(e)) if seqs(&e) == [7, 8, 9, 10]),
                "{last:?}"
            );
        }
        let empty = Journal::new(4);
        assert_eq!(
            empty.since(Some(&empty.id(0))),
            Some(Replay::Missed(vec![]))
        );
        assert_eq!(empty.since(Some(&empty.id(3))), Some(Replay::Reset(vec![])));
    }

    #[test]
    fn live_events_follow_the_replay_without_a_gap() {
        let shared = Mutex::new(journal(3, 4));
        let two = shared.lock().expect("lock").id(2);
        let (replay, mut live) = open(&shared, Some(&two));
        assert!(matches!(replay, Some(Replay::Missed(e)) if seqs(&e) == [3]));
        shared.lock().expect("lock").push("e4".into());
        let four = shared.lock().expect("lock").id(4);
        assert_eq!(live.try_recv().ok().map(|(id, _)| id), Some(four));
    }
}
