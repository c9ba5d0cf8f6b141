//! The full-screen client: rooms, the current room's messages, its members,
//! a status line and an input line, drawn with ratatui. A client of
//! [`Node`](crate::node::Node) only. Lines typed go through the same
//! session as line mode, so every `/command` answers the same; what the
//! screen shows is `state`, what it looks like is `draw`.
//!
//! It reads terminal events from a stream it is given and draws to any
//! `Write` at a size it is told, so a remote terminal can be served as the
//! local one is. Redraws are coalesced to a frame budget: a burst of
//! messages costs one frame per budget, not one per message; when the
//! node's event channel overflows, the room shown is read again from the
//! store rather than shown with a gap.

mod draw;
mod state;
#[cfg(test)]
mod tests;

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::PoisonError,
    time::Duration,
};

use crossterm::event::Event as TermEvent;
use futures::{Stream, StreamExt as _};
use ratatui::{
    Terminal, TerminalOptions, Viewport,
    backend::{Backend, CrosstermBackend},
    layout::Rect,
};
use tokio::{
    sync::{broadcast::error::TryRecvError, mpsc},
    time::Instant,
};

use state::{Action, Entry, Mark, Member, Said, State, Target};

use super::{Exit, Input, Session, Sink, parse};
use crate::{
    node::{Error, Event, Events, Receipt},
    sanitize::for_terminal as clean,
};

/// At most one frame per this: bursts are drawn once per budget.
const FRAME: Duration = Duration::from_millis(16);
/// Node events taken per turn before keys get a look in.
const EVENTS_PER_TURN: usize = 256;
/// How often the status line and the members pane are asked for.
const REFRESH: Duration = Duration::from_secs(2);
/// Messages read into a room's pane when it is first shown or reloaded.
const LOAD: usize = 200;
/// Messages read per page when scrolling back past what is held.
const PAGE: usize = 100;
/// Queued events taken in at most after falling behind, before the reload
/// (more than the channel holds: it refills while they are read).
const CATCH_UP_CAP: usize = 16_384;
/// Lines looked through for a message already shown: one read from the
/// store just after it arrived is among the newest.
const RECENT: usize = 512;
/// Direct messages of ours awaiting their receipt.
const DIRECTS_CAP: usize = 64;

/// The outcome of a direct message: where, which line, and the receipt.
type DirectDone = (Target, String, Result<Receipt, Error>);

/// Runs the client in this process's terminal: full screen, raw mode,
/// until `/quit`, Ctrl+C, Ctrl+D, a signal or the node stopping; the
/// terminal is put back on every way out (a panic too).
pub(super) async fn run_local(
    session: Session<tokio::io::Empty>,
    events: Events,
    history: Option<PathBuf>,
    http: Option<String>,
    notes: Vec<String>,
) -> Exit {
    let size = crossterm::terminal::size().unwrap_or((80, 24));
    let _screen = match Screen::enter() {
        Ok(screen) => screen,
        Err(e) => {
            eprintln!(
                "p2p-chat: error: the full-screen client needs a terminal ({e}): try --ui line"
            );
            return Exit::Quit;
        }
    };
    let keys = crossterm::event::EventStream::new();
    let shutdown = crate::shutdown::signal();
    let backend = CrosstermBackend::new(std::io::stdout());
    let setup = Setup {
        history,
        http,
        notes,
    };
    serve(session, events, keys, backend, size, setup, shutdown)
        .await
        .0
}

/// What the client starts with besides its session and terminal.
pub(super) struct Setup {
    /// The input history file (shared with line mode), if kept.
    pub(super) history: Option<PathBuf>,
    /// The HTTP API's address, for the status line.
    pub(super) http: Option<String>,
    /// Lines shown first (the SSH server's address).
    pub(super) notes: Vec<String>,
}

/// What drawing cost while the client ran: for the bench.
#[derive(Debug, Clone, Default)]
pub struct Frames {
    /// Frames drawn.
    pub drawn: u64,
    /// Node events taken in.
    pub events: u64,
    /// Each frame's drawing time, µs (the first 100,000).
    pub draw_us: Vec<f64>,
    /// From a key press to the end of the frame that shows it, µs (the
    /// first 100,000).
    pub key_to_frame_us: Vec<f64>,
    /// Times the event subscription lagged and the room was read again.
    pub reloads: u64,
}

/// Samples kept per figure.
const SAMPLES_CAP: usize = 100_000;

/// Serves the client on a terminal: `keys` are its events, `backend` what
/// draws on it, `size` its size at start (resizes come as events).
pub(super) async fn serve<B, K>(
    mut session: Session<tokio::io::Empty>,
    mut events: Events,
    mut keys: K,
    backend: B,
    (width, height): (u16, u16),
    setup: Setup,
    shutdown: impl Future<Output = ()>,
) -> (Exit, Frames)
where
    B: Backend,
    K: Stream<Item = std::io::Result<TermEvent>> + Unpin,
{
    let sink = Sink::default();
    session.output = super::Output::Queue(sink.clone());
    session.show_backlog = false;
    let options = TerminalOptions {
        viewport: Viewport::Fixed(Rect::new(0, 0, width, height)),
    };
    let terminal = match Terminal::with_options(backend, options) {
        Ok(terminal) => terminal,
        Err(e) => {
            tracing::warn!(error = %e, "terminal");
            return (Exit::Quit, Frames::default());
        }
    };
    let mut state = State::new((width, height));
    state.status.http = setup.http;
    let setup_notes = setup.notes;
    if let Some(path) = &setup.history {
        for line in load_history(path) {
            state.remember(line);
        }
    }
    let mut tui = Tui {
        session,
        state,
        sink,
        terminal,
        history: setup.history,
        directs: mpsc::channel(DIRECTS_CAP),
        sent: 0,
        frames: Frames::default(),
        key_at: None,
    };
    tui.refresh().await;
    let first = tui
        .session
        .model
        .current()
        .map(|r| Target::Room(r.to_owned()));
    if let Some(first) = first {
        tui.focus(first).await;
    }
    tui.notice(&format!(
        "p2p-chat {} · /help for commands · Alt+1..9 or Ctrl+N/P switch · PgUp/PgDn scroll · Ctrl+C quits",
        env!("CARGO_PKG_VERSION")
    ));
    for note in &setup_notes {
        tui.notice(note);
    }
    let exit = tui.run(&mut events, &mut keys, shutdown).await;
    (exit, tui.frames)
}

impl<B: Backend> Tui<B> {
    /// Until the client ends.
    async fn run<K>(
        &mut self,
        events: &mut Events,
        keys: &mut K,
        shutdown: impl Future<Output = ()>,
    ) -> Exit
    where
        K: Stream<Item = std::io::Result<TermEvent>> + Unpin,
    {
        tokio::pin!(shutdown);
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = true;
        let mut next_frame = Instant::now();
        // A key was taken in: look for more keys before drawing, so keys
        // already waiting (a paste, a packet of keys over SSH) share one
        // frame; while they keep coming, one frame per frame's time.
        let mut more_keys = false;
        loop {
            let keys_waited = !more_keys || self.key_at.is_some_and(|t| t.elapsed() >= FRAME);
            if dirty && Instant::now() >= next_frame && keys_waited {
                if !self.draw() {
                    return Exit::Quit;
                }
                dirty = false;
                next_frame = Instant::now() + FRAME;
            }
            tokio::select! {
                // A person first: keys are never queued behind a burst.
                biased;
                () = &mut shutdown => return Exit::Signal,
                key = keys.next() => {
                    if let Some(exit) = self.on_key(key).await {
                        return exit;
                    }
                    // Typing shows at once, not at the next budget.
                    dirty = true;
                    next_frame = Instant::now();
                    more_keys = true;
                }
                // No key waiting: the frame showing those taken is next,
                // before any node event.
                () = std::future::ready(()), if more_keys => more_keys = false,
                event = events.recv() => {
                    match event {
                        Ok(event) => {
                            self.frames.events += 1;
                            self.on_node_event(event).await;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => self.lagged(n, events).await,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return Exit::NodeStopped,
                    }
                    // The rest of a burst, within a frame's time, then keys
                    // and the frame get their turn.
                    let turn = std::time::Instant::now();
                    for _ in 0..EVENTS_PER_TURN {
                        if turn.elapsed() >= FRAME {
                            break;
                        }
                        match events.try_recv() {
                            Ok(event) => {
                                self.frames.events += 1;
                                self.on_node_event(event).await;
                            }
                            Err(TryRecvError::Lagged(n)) => self.lagged(n, events).await,
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Closed) => return Exit::NodeStopped,
                        }
                    }
                    dirty = true;
                }
                Some((target, token, result)) = self.directs.1.recv() => {
                    self.direct_done(&target, &token, result);
                    dirty = true;
                }
                Some(line) = self.session.lines.1.recv() => {
                    self.notice(&line);
                    dirty = true;
                }
                _ = refresh.tick() => {
                    self.refresh().await;
                    dirty = true;
                }
                () = tokio::time::sleep_until(next_frame), if dirty => {}
            }
        }
    }
}

/// The client's parts.
struct Tui<B: Backend> {
    session: Session<tokio::io::Empty>,
    state: State,
    sink: Sink,
    terminal: Terminal<B>,
    history: Option<PathBuf>,
    directs: (mpsc::Sender<DirectDone>, mpsc::Receiver<DirectDone>),
    /// Direct messages sent so far: each line's token until its receipt.
    sent: u64,
    frames: Frames,
    /// When the first key not yet drawn came.
    key_at: Option<std::time::Instant>,
}

impl<B: Backend> Tui<B> {
    /// Draws a frame; false if the terminal is gone.
    fn draw(&mut self) -> bool {
        let model = &self.session.model;
        for (room, _) in model.rooms() {
            let counts = (model.unread(&room), model.mentions(&room));
            self.state.counts.insert(room, counts);
        }
        let state = &self.state;
        let started = std::time::Instant::now();
        match self.terminal.draw(|frame| draw::draw(frame, state)) {
            Ok(_) => {
                let f = &mut self.frames;
                f.drawn += 1;
                let done = std::time::Instant::now();
                if f.draw_us.len() < SAMPLES_CAP {
                    f.draw_us.push((done - started).as_secs_f64() * 1e6);
                }
                if let Some(key) = self.key_at.take()
                    && f.key_to_frame_us.len() < SAMPLES_CAP
                {
                    f.key_to_frame_us.push((done - key).as_secs_f64() * 1e6);
                }
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "drawing");
                false
            }
        }
    }

    /// A notice in the conversation shown; lines from the renderer.
    fn notice(&mut self, text: &str) {
        let error = text.starts_with("error: ");
        self.state.notice(text, error);
    }

    /// Shows what commands printed.
    fn drain(&mut self) {
        let lines = std::mem::take(&mut *self.sink.lock().unwrap_or_else(PoisonError::into_inner));
        for line in lines {
            self.notice(&line);
        }
    }

    /// Status line, rooms, pending counts and the members pane, as the
    /// node has them now.
    async fn refresh(&mut self) {
        let node = self.session.node.clone();
        if let Ok(status) = node.status().await {
            self.session.model.set_me(&status.nick);
            let s = &mut self.state.status;
            s.peer_id = status.peer_id.clone();
            s.nick = status.nick.clone();
            s.reachability = status.reachability.as_str().to_owned();
            s.peers = status.connected_peers;
            s.ssh = status.ssh.as_ref().map(|ssh| ssh.sessions);
        }
        if let Ok(rooms) = node.rooms().await {
            self.session.model.set_rooms(&rooms);
            self.state.pending = rooms.iter().map(|r| (r.room.clone(), r.pending)).collect();
        }
        self.state.set_rooms(self.session.model.rooms());
        self.members().await;
    }

    /// The members pane: us, then the conversation's connected peers.
    async fn members(&mut self) {
        let node = self.session.node.clone();
        let peers = node.peers().await.unwrap_or_default();
        let ids: Vec<String> = match self.state.focus() {
            Some(Target::Room(room)) => node.members(room).await.unwrap_or_default(),
            Some(Target::Direct(peer)) if !peer.is_empty() => vec![peer.clone()],
            _ => Vec::new(),
        };
        let me = &self.state.status;
        let mut rows = vec![Member {
            who: clean(&me.nick),
            peer: me.peer_id.clone(),
            connected: true,
            rtt_ms: None,
            connection: "direct",
            me: true,
        }];
        self.session.model.names(|names| {
            for id in ids {
                let info = peers.iter().find(|p| p.peer == id);
                rows.push(Member {
                    who: names.show(&id),
                    connected: info.is_some(),
                    rtt_ms: info.and_then(|p| p.rtt_ms),
                    connection: info.map_or("direct", |p| p.connection),
                    peer: id,
                    me: false,
                });
            }
        });
        self.state.members = rows;
    }

    /// Shows `target`; a room becomes the session's current room and is
    /// read from the store if its pane may have a gap.
    async fn focus(&mut self, target: Target) {
        if let Target::Room(room) = &target {
            self.session.model.set_current(Some(room.clone()));
        }
        self.state.set_focus(target);
        if let Some(room) = self.state.stale_focus() {
            self.load(&room).await;
        }
        self.members().await;
    }

    /// Reads `room`'s newest messages from the store into its pane.
    async fn load(&mut self, room: &str) {
        let node = self.session.node.clone();
        match node.history(room, LOAD, None).await {
            Ok(messages) => {
                let entries = self.entries(&messages);
                self.state.load(room, entries, messages.len() < LOAD);
            }
            Err(e) => self.notice(&format!("error: {e}")),
        }
    }

    fn entries(&mut self, messages: &[crate::protocol::ChatMessage]) -> Vec<Entry> {
        let me = self.state.status.peer_id.clone();
        let model = &self.session.model;
        model.names(|names| state::entries(messages, &me, names, |t| model.mentions_me(t)))
    }

    /// Events were missed: every room is read again before it is shown,
    /// the one shown now at once.
    async fn lagged(&mut self, missed: u64, events: &mut Events) {
        self.frames.reloads += 1;
        // What is still queued is older than the reload: room messages in
        // it are in the store and shown by the reload, the rest is taken
        // in as usual (direct messages are not stored).
        for _ in 0..CATCH_UP_CAP {
            match events.try_recv() {
                Ok(
                    event @ (Event::Message { .. } | Event::Sent { .. } | Event::Pending { .. }),
                ) => {
                    self.session.model.observe(&event);
                }
                Ok(event) => self.on_node_event(event).await,
                Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        self.state.all_stale();
        if let Some(room) = self.state.stale_focus() {
            self.load(&room).await;
        }
        tracing::debug!(missed, "events missed: rooms read again from the store");
    }

    async fn on_node_event(&mut self, event: Event) {
        let notice = self.session.model.observe(&event);
        let me = self.state.status.nick.clone();
        match &event {
            Event::Message {
                room,
                id,
                from,
                nick,
                text,
                ts,
                recovered,
            } => {
                let target = Target::Room(room.clone());
                if self.state.has(&target, id, RECENT) {
                    return;
                }
                let mention = self.session.model.mentions_me(text);
                let (entry, _) = self.theirs(id, *ts, from, nick, text, mention, *recovered);
                self.state.push(target, entry);
            }
            Event::Sent {
                room,
                id,
                nick,
                text,
                ts,
            } => {
                let target = Target::Room(room.clone());
                if self.state.has(&target, id, usize::MAX) {
                    self.state.mark(&target, id, Mark::Saved);
                } else {
                    let entry = self.mine(id, *ts, nick, text, Mark::Saved);
                    self.state.push(target, entry);
                }
            }
            Event::Pending { room, id, text } => {
                let entry = self.mine(id, now_ms(), &me, text, Mark::Pending);
                self.state.push(Target::Room(room.clone()), entry);
            }
            Event::NotSaved {
                room, id, error, ..
            } => {
                let target = Target::Room(room.clone());
                self.state.mark(
                    &target,
                    id,
                    Mark::Failed(format!("not saved: {}", clean(error))),
                );
            }
            Event::Direct {
                id,
                from,
                nick,
                text,
                ts,
            } => {
                let target = Target::Direct(from.clone());
                let (entry, who) = self.theirs(id, *ts, from, nick, text, false, false);
                self.state.push(target.clone(), entry);
                // The conversation is with the node, whichever of its
                // users (`user@node`) wrote.
                let label = if nick.contains('@') {
                    self.session.model.names(|n| n.show(from))
                } else {
                    who
                };
                self.state.set_label(&target, label);
            }
            // Shown as the mark of the line sent.
            Event::Receipt { .. } | Event::DirectFailed { .. } => {}
            Event::Joined { .. } | Event::Left { .. } => {
                self.refresh().await;
                self.show_event(&event, &notice);
            }
            _ => self.show_event(&event, &notice),
        }
    }

    /// An event as line mode words it, as a notice.
    fn show_event(&mut self, event: &Event, notice: &super::names::Notice) {
        let line = self
            .session
            .model
            .names(|names| self.session.render.event(event, names, notice));
        if let Some(line) = line {
            self.notice(&line);
        }
    }

    /// Someone else's message, as an entry, and how they are shown.
    #[allow(clippy::too_many_arguments)]
    fn theirs(
        &self,
        id: &str,
        ts: u64,
        from: &str,
        nick: &str,
        text: &str,
        mention: bool,
        recovered: bool,
    ) -> (Entry, String) {
        let who = self.session.model.names(|n| n.author(from, nick));
        let entry = Entry::said(&Said {
            id: Some(id),
            ts,
            from,
            who: &who,
            text,
            mine: false,
            mention,
            mark: Mark::None,
            recovered,
        });
        (entry, who)
    }

    /// One of our messages, as an entry.
    fn mine(&self, id: &str, ts: u64, nick: &str, text: &str, mark: Mark) -> Entry {
        Entry::said(&Said {
            id: Some(id),
            ts,
            from: &self.state.status.peer_id,
            who: &clean(nick),
            text,
            mine: true,
            mention: false,
            mark,
            recovered: false,
        })
    }

    /// One item of the terminal's event stream; Some when the client ends.
    async fn on_key(&mut self, key: Option<std::io::Result<TermEvent>>) -> Option<Exit> {
        match key {
            Some(Ok(event)) => {
                self.key_at.get_or_insert_with(std::time::Instant::now);
                self.on_term_event(event).await
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "reading the terminal");
                Some(Exit::Quit)
            }
            None => Some(Exit::Quit),
        }
    }

    /// A terminal event; Some when the client ends.
    async fn on_term_event(&mut self, event: TermEvent) -> Option<Exit> {
        if let TermEvent::Resize(w, h) = event
            && let Err(e) = self.terminal.resize(Rect::new(0, 0, w, h))
        {
            tracing::debug!(error = %e, "resize");
        }
        let action = {
            let known = self.session.model.known();
            let known = known.lock().unwrap_or_else(PoisonError::into_inner);
            self.state.on_event(&event, &known)
        };
        match action {
            Action::Nothing | Action::Redraw => None,
            Action::Quit => Some(Exit::Quit),
            Action::Interrupt => Some(Exit::Signal),
            Action::Focus(target) => {
                self.focus(target).await;
                None
            }
            Action::Older { room, before } => {
                let node = self.session.node.clone();
                match node.history(&room, PAGE, Some(&before)).await {
                    Ok(messages) => {
                        let entries = self.entries(&messages);
                        self.state.prepend(&room, entries, messages.len() < PAGE);
                        self.state.scroll_into_page(&room);
                    }
                    Err(e) => self.notice(&format!("error: {e}")),
                }
                None
            }
            Action::Submit(line) => self.submit(line).await,
        }
    }

    /// An entered line: a passphrase, a command, or text for the
    /// conversation shown.
    async fn submit(&mut self, line: String) -> Option<Exit> {
        let before = self.session.model.current().map(str::to_owned);
        if self.state.secret.take().is_some() {
            self.session.handle_line(&line).await;
            self.after_command(before, false).await;
            return None;
        }
        let parsed = parse(&line);
        if self.session.model.keep_in_history(&parsed) {
            self.remember(line.clone());
        }
        let direct = match self.state.focus() {
            Some(Target::Direct(peer)) if !peer.is_empty() => Some(peer.clone()),
            _ => None,
        };
        match (parsed, direct) {
            (Ok(Input::Quit), _) => return Some(Exit::Quit),
            (Ok(Input::Clear), _) => self.state.clear(),
            (Ok(Input::Msg { to, text }), _) => self.direct(&to, text).await,
            (Ok(Input::Say(text)), Some(peer)) => self.direct_to(peer, text),
            (Ok(Input::Me(action)), Some(peer)) => self.direct_to(peer, format!("/me {action}")),
            (parsed, _) => {
                let moves = matches!(
                    parsed,
                    Ok(Input::Switch(_) | Input::Join { .. } | Input::JoinTicket(_))
                );
                self.session.handle_line(&line).await;
                self.session.remember = None;
                self.after_command(before, moves).await;
            }
        }
        None
    }

    /// What a command changed: its output, the rooms, the current room, a
    /// passphrase question.
    /// `before` was the current room before it; `moves` if the command
    /// makes a room current (`/join`, `/switch`) even from a direct
    /// conversation.
    async fn after_command(&mut self, before: Option<String>, moves: bool) {
        if let Some(room) = &self.session.awaiting_passphrase {
            self.state.secret = Some(format!(
                "passphrase for #{} (hidden, empty line cancels): ",
                clean(room)
            ));
        }
        self.refresh().await;
        let now = self.session.model.current().map(str::to_owned);
        let go = match self.state.focus() {
            None | Some(Target::Room(_)) => {
                self.state.focus() != now.clone().map(Target::Room).as_ref()
            }
            // A command typed in a direct conversation stays there unless
            // it changed the room.
            Some(Target::Direct(_)) => moves || now != before,
        };
        if go && let Some(now) = now {
            self.focus(Target::Room(now)).await;
        }
        self.drain();
    }

    /// Keeps `line` for Up/Down and in the history file.
    fn remember(&mut self, line: String) {
        if let Some(path) = &self.history {
            append_history(path, &line);
        }
        self.state.remember(line);
    }

    /// `/msg WHO TEXT`: to the one peer `who` names.
    async fn direct(&mut self, who: &str, text: String) {
        let found = self.session.model.names(|names| names.find(who));
        let peer = match found.as_slice() {
            [one] => one.clone(),
            [] if who.parse::<libp2p::PeerId>().is_ok() => who.to_owned(),
            [] => {
                self.notice(&format!(
                    "error: no one called {} seen: /names and /peers list who is here",
                    clean(who)
                ));
                return;
            }
            _ => {
                self.notice(&format!(
                    "error: {} is more than one peer: /whois {} tells them apart",
                    clean(who),
                    clean(who)
                ));
                return;
            }
        };
        if !self.within_rate() {
            return;
        }
        self.focus(Target::Direct(peer.clone())).await;
        self.send_direct(peer, text);
    }

    /// Whether the session may send one more message now; if not, the
    /// line saying so is shown.
    fn within_rate(&mut self) -> bool {
        let ok = self.session.within_rate();
        if !ok {
            self.drain();
        }
        ok
    }

    /// Sends `text` to `peer`, if the rate allows.
    fn direct_to(&mut self, peer: String, text: String) {
        if self.within_rate() {
            self.send_direct(peer, text);
        }
    }

    /// Sends `text` to `peer` in the background; its line shows the receipt.
    fn send_direct(&mut self, peer: String, text: String) {
        let target = Target::Direct(peer.clone());
        self.sent += 1;
        let token = format!("local-{}", self.sent);
        let nick = self.session.nick_shown(&self.state.status.nick);
        let entry = self.mine(&token, now_ms(), &nick, &text, Mark::Sending);
        let label = self.session.model.names(|n| n.show(&peer));
        self.state.push(target.clone(), entry);
        self.state.set_label(&target, label);
        let sender = self.session.direct_sender();
        let done = self.directs.0.clone();
        tokio::spawn(async move {
            let result = sender.send(&peer, &text).await;
            let _ = done.send((target, token, result)).await;
        });
    }

    fn direct_done(&mut self, target: &Target, token: &str, result: Result<Receipt, Error>) {
        match result {
            Ok(receipt) => {
                self.state
                    .mark_direct(target, token, Some(&receipt.id), Mark::Delivered)
            }
            Err(e) => {
                self.state
                    .mark_direct(target, token, None, Mark::Failed(clean(&e.to_string())))
            }
        }
    }
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// Lines of the input history file (the line editor's format: a `#V2`
/// header, backslash escapes for backslashes and line breaks).
fn load_history(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| *l != "#V2")
        .map(|l| l.replace("\\n", "\n").replace("\\\\", "\\"))
        .collect()
}

/// Adds `line` to the input history file (made with mode 0600).
fn append_history(path: &Path, line: &str) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let new = !path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path);
    let escaped = line.replace('\\', "\\\\").replace('\n', "\\n");
    let written = file.and_then(|mut f| {
        if new {
            writeln!(f, "#V2")?;
        }
        writeln!(f, "{escaped}")
    });
    if let Err(e) = written {
        tracing::warn!(error = %e, path = %path.display(), "input history not saved");
    }
}

/// This process's terminal in raw mode on the alternate screen, put back
/// when dropped (the session's end, or its future dropped on a signal) and
/// before a panic's message is printed.
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        crossterm::terminal::enable_raw_mode()?;
        let entered = crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::event::EnableBracketedPaste,
        );
        if let Err(e) = entered {
            leave();
            return Err(e);
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            leave();
            previous(info);
        }));
        Ok(Screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        leave();
    }
}

/// Puts the terminal back: main screen, cursor shown, cooked mode.
fn leave() {
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::event::DisableBracketedPaste,
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show,
    );
    let _ = crossterm::terminal::disable_raw_mode();
}
