//! What the full-screen client shows, without a terminal: a buffer of lines
//! per room and per direct conversation, where each is scrolled to, the
//! input line with its history and completion, and what a key press means.
//! The loop in `tui.rs` does what the answers ask (send, load a page, quit);
//! `draw.rs` paints this state. Every string from the network is sanitized
//! on its way in.

use std::collections::{BTreeMap, VecDeque};

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tui_input::{Input, backend::crossterm::EventHandler as _};
use unicode_width::UnicodeWidthChar as _;

use crate::{
    protocol::ChatMessage,
    sanitize::for_terminal as clean,
    ui::{
        names::Names,
        session::{Known, complete},
    },
};

/// Lines a buffer keeps while it is scrolled to the bottom; older ones are
/// read again from the store when scrolled to.
pub(crate) const BUFFER_CAP: usize = 2000;
/// Lines a buffer may grow to while scrolled back through store pages.
const SCROLLED_CAP: usize = 50_000;
/// Input lines kept for Up/Down.
const HISTORY_CAP: usize = 1000;
/// The text that starts an action (`/me waves`).
const ACTION: &str = "/me ";

/// A conversation: a room, or direct messages with one peer (by peer id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Target {
    /// A joined room.
    Room(String),
    /// Direct messages with a peer.
    Direct(String),
}

/// Where one of our messages is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Someone else's message, or a notice.
    None,
    /// A room message waiting for a peer of the room.
    Pending,
    /// A room message committed to the store (and sent).
    Saved,
    /// A direct message on its way.
    Sending,
    /// A direct message the peer acknowledged.
    Delivered,
    /// A direct message or room message that did not make it, and why.
    Failed(String),
}

/// One line of a buffer (before wrapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// Something said: a message, or an action (`/me`).
    Said {
        /// The message id (None for a direct message of ours until it is
        /// acknowledged).
        id: Option<String>,
        /// Author's clock, ms since the epoch.
        ts: u64,
        /// The author's peer id: picks the nick's colour.
        from: String,
        /// How the author is shown (sanitized).
        who: String,
        /// The text, sanitized, without the action prefix.
        text: String,
        /// An action (`* who waves`).
        action: bool,
        /// Ours.
        mine: bool,
        /// It names us.
        mention: bool,
        /// Ours: where it is.
        mark: Mark,
        /// It came by history sync.
        recovered: bool,
    },
    /// A notice: a command's output or an event worth telling.
    Notice {
        /// The text, sanitized.
        text: String,
        /// An error (shown so).
        error: bool,
    },
}

impl Entry {
    /// A notice; `text` is already sanitized (the renderer's lines, and
    /// ours made with `sanitize::for_terminal`).
    pub(crate) fn notice(text: &str, error: bool) -> Entry {
        Entry::Notice {
            text: text.to_owned(),
            error,
        }
    }

    /// A message: `text` and `who` come from the network.
    pub(crate) fn said(message: &Said<'_>) -> Entry {
        let (text, action) = match message.text.strip_prefix(ACTION) {
            Some(action) => (action, true),
            None => (message.text, false),
        };
        Entry::Said {
            id: message.id.map(str::to_owned),
            ts: message.ts,
            from: message.from.to_owned(),
            who: message.who.to_owned(),
            text: clean(text),
            action,
            mine: message.mine,
            mention: message.mention,
            mark: message.mark.clone(),
            recovered: message.recovered,
        }
    }

    fn id(&self) -> Option<&str> {
        match self {
            Entry::Said { id, .. } => id.as_deref(),
            Entry::Notice { .. } => None,
        }
    }
}

/// A message as it comes in, for [`Entry::said`].
#[derive(Debug)]
pub(crate) struct Said<'a> {
    pub(crate) id: Option<&'a str>,
    pub(crate) ts: u64,
    pub(crate) from: &'a str,
    /// Already sanitized (from [`Names`]).
    pub(crate) who: &'a str,
    /// Raw, from the network.
    pub(crate) text: &'a str,
    pub(crate) mine: bool,
    pub(crate) mention: bool,
    pub(crate) mark: Mark,
    pub(crate) recovered: bool,
}

/// One conversation's lines and view.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    pub(crate) entries: VecDeque<Entry>,
    /// Rows scrolled back from the bottom (0: following new lines).
    pub(crate) scroll: usize,
    /// Lines arrived below the view while scrolled back.
    pub(crate) below: usize,
    /// Where PgUp meant to go when it needed an older page first.
    wanted: Option<usize>,
    /// The store has nothing older than the first entry.
    pub(crate) complete: bool,
    /// Its lines may have a gap (events were missed): read it again from
    /// the store before it is shown.
    pub(crate) stale: bool,
    /// Direct conversations: messages since it was last shown.
    pub(crate) unread: u64,
    /// Direct conversations: how the peer is shown (sanitized).
    pub(crate) label: String,
}

impl Buffer {
    fn room() -> Buffer {
        Buffer {
            stale: true,
            ..Buffer::default()
        }
    }

    fn direct() -> Buffer {
        // Direct messages are not stored: what this run saw is all there is.
        Buffer {
            complete: true,
            ..Buffer::default()
        }
    }

    fn push(&mut self, entry: Entry, width: impl FnOnce() -> usize) {
        if self.scroll > 0 {
            let rows = rows(&entry, width());
            self.scroll += rows;
            self.below += 1;
        }
        self.entries.push_back(entry);
        let cap = if self.scroll == 0 {
            BUFFER_CAP
        } else {
            SCROLLED_CAP
        };
        while self.entries.len() > cap {
            self.entries.pop_front();
            self.complete = false;
        }
    }

    /// The id of the oldest message, to page back from.
    fn oldest_id(&self) -> Option<&str> {
        self.entries.iter().find_map(Entry::id)
    }

    /// Total rows at `width`.
    pub(crate) fn rows(&self, width: usize) -> usize {
        self.entries.iter().map(|e| rows(e, width)).sum()
    }
}

/// A member shown in the members pane.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    /// How they are shown (sanitized).
    pub(crate) who: String,
    /// Peer id.
    pub(crate) peer: String,
    pub(crate) connected: bool,
    pub(crate) rtt_ms: Option<f64>,
    /// "direct" or "relayed".
    pub(crate) connection: &'static str,
    /// This node.
    pub(crate) me: bool,
}

/// What the status line says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatusLine {
    pub(crate) peer_id: String,
    pub(crate) nick: String,
    pub(crate) reachability: String,
    pub(crate) peers: usize,
    pub(crate) http: Option<String>,
    /// SSH sessions open on the node, if it serves SSH.
    pub(crate) ssh: Option<usize>,
}

/// What the loop must do after a key press.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing but a redraw.
    Redraw,
    /// Nothing changed.
    Nothing,
    /// A line was entered.
    Submit(String),
    /// The focus moved: the room (if a room) becomes current.
    Focus(Target),
    /// Scrolled back past what the buffer holds: read the page before
    /// `before` from the store.
    Older {
        /// The room.
        room: String,
        /// The oldest message held.
        before: String,
    },
    /// Ctrl+D on an empty line.
    Quit,
    /// Ctrl+C.
    Interrupt,
}

/// Tab completion under way: the line before it, and which candidate is
/// shown.
#[derive(Debug)]
struct Completion {
    before: String,
    start: usize,
    candidates: Vec<String>,
    next: usize,
}

/// How times are shown (local time; tests pass a fixed one).
pub(crate) type Clock = fn(u64) -> String;

/// The local time of `ts` (ms), `HH:MM`.
pub(crate) fn local_time(ts: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ts as i64)
        .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
        .unwrap_or_else(|| "--:--".into())
}

/// The whole client's state.
#[derive(Debug)]
pub(crate) struct State {
    buffers: BTreeMap<Target, Buffer>,
    focus: Option<Target>,
    pub(crate) input: Input,
    history: VecDeque<String>,
    /// Position in history while Up/Down walk it, and the line being typed
    /// before.
    recall: Option<(usize, String)>,
    completion: Option<Completion>,
    /// The question while a passphrase is typed (not echoed).
    pub(crate) secret: Option<String>,
    pub(crate) members: Vec<Member>,
    pub(crate) status: StatusLine,
    /// Per room: messages waiting for a peer.
    pub(crate) pending: BTreeMap<String, usize>,
    /// Per room: unread messages and mentions (the session model's).
    pub(crate) counts: BTreeMap<String, (u64, u64)>,
    /// Rooms (with whether encrypted), in the pane's order.
    rooms: Vec<(String, bool)>,
    /// The size of the screen.
    pub(crate) size: (u16, u16),
    pub(crate) clock: Clock,
}

impl State {
    /// A client with no rooms yet, on a screen of `size`.
    pub(crate) fn new(size: (u16, u16)) -> State {
        State {
            buffers: BTreeMap::new(),
            focus: None,
            input: Input::default(),
            history: VecDeque::new(),
            recall: None,
            completion: None,
            secret: None,
            members: Vec::new(),
            status: StatusLine::default(),
            pending: BTreeMap::new(),
            counts: BTreeMap::new(),
            rooms: Vec::new(),
            size,
            clock: local_time,
        }
    }

    /// The conversation shown.
    pub(crate) fn focus(&self) -> Option<&Target> {
        self.focus.as_ref()
    }

    /// The conversations in the rooms pane's order: rooms by name, then
    /// direct conversations by when they started.
    pub(crate) fn targets(&self) -> Vec<Target> {
        let mut out: Vec<Target> = self
            .rooms
            .iter()
            .map(|(r, _)| Target::Room(r.clone()))
            .collect();
        out.extend(
            self.buffers
                .keys()
                .filter(|t| matches!(t, Target::Direct(_)))
                .cloned(),
        );
        out
    }

    /// Unread messages and mentions in `target`.
    pub(crate) fn counts(&self, target: &Target) -> (u64, u64) {
        match target {
            Target::Room(room) => self.counts.get(room).copied().unwrap_or_default(),
            Target::Direct(_) => (self.buffers.get(target).map_or(0, |b| b.unread), 0),
        }
    }

    /// How the peer of a direct conversation is shown.
    pub(crate) fn set_label(&mut self, target: &Target, label: String) {
        if let Some(buffer) = self.buffers.get_mut(target) {
            buffer.label = label;
        }
    }

    /// Whether `room` is encrypted.
    pub(crate) fn encrypted(&self, room: &str) -> bool {
        self.rooms.iter().any(|(r, e)| r == room && *e)
    }

    /// A buffer.
    pub(crate) fn buffer(&self, target: &Target) -> Option<&Buffer> {
        self.buffers.get(target)
    }

    /// The rooms joined, as the session model has them; buffers of rooms
    /// left go, new ones are stale until loaded.
    pub(crate) fn set_rooms(&mut self, rooms: Vec<(String, bool)>) {
        self.buffers.retain(|t, _| {
            matches!(t, Target::Direct(_))
                || rooms.iter().any(|(r, _)| t == &Target::Room(r.clone()))
        });
        for (room, _) in &rooms {
            self.buffers
                .entry(Target::Room(room.clone()))
                .or_insert_with(Buffer::room);
        }
        self.rooms = rooms;
        if let Some(Target::Room(r)) = &self.focus
            && !self.rooms.iter().any(|(room, _)| room == r)
        {
            self.focus = None;
        }
    }

    /// `target`'s buffer, made if new.
    fn buffer_mut(&mut self, target: &Target) -> &mut Buffer {
        self.buffers
            .entry(target.clone())
            .or_insert_with(|| match target {
                Target::Room(_) => Buffer::room(),
                Target::Direct(_) => Buffer::direct(),
            })
    }

    /// Shows `target` (made if it is a direct conversation).
    pub(crate) fn set_focus(&mut self, target: Target) {
        let buffer = self.buffer_mut(&target);
        buffer.unread = 0;
        self.focus = Some(target);
    }

    /// The width messages wrap at.
    pub(crate) fn text_width(&self) -> usize {
        text_width_at(self.size)
    }

    fn text_height(&self) -> usize {
        usize::from(super::draw::layout(self.size).messages.height).max(1)
    }

    /// Adds a line to `target`'s buffer (made for a direct conversation).
    pub(crate) fn push(&mut self, target: Target, entry: Entry) {
        // Only needed while scrolled back (the layout is not free).
        let size = self.size;
        let width = move || text_width_at(size);
        let shown = self.focus.as_ref() == Some(&target);
        let buffer = self.buffer_mut(&target);
        if !shown
            && matches!(target, Target::Direct(_))
            && matches!(entry, Entry::Said { mine: false, .. })
        {
            buffer.unread += 1;
        }
        buffer.push(entry, width);
    }

    /// Adds a notice to the conversation shown.
    pub(crate) fn notice(&mut self, text: &str, error: bool) {
        let target = self.focus.clone();
        match target {
            Some(t) => {
                for line in text.lines() {
                    self.push(t.clone(), Entry::notice(line, error));
                }
            }
            None => {
                // No room yet: a buffer of its own for what the node says.
                let t = Target::Direct(String::new());
                self.set_focus(t.clone());
                for line in text.lines() {
                    self.push(t.clone(), Entry::notice(line, error));
                }
            }
        }
    }

    /// Marks our message `id` in `room`.
    pub(crate) fn mark(&mut self, target: &Target, id: &str, mark: Mark) {
        if let Some(buffer) = self.buffers.get_mut(target)
            && let Some(Entry::Said { mark: m, .. }) =
                buffer.entries.iter_mut().rev().find(|e| e.id() == Some(id))
        {
            *m = mark;
        }
    }

    /// Marks our direct message that is the `n`th line sent in `target`
    /// (by its place, as it has no id until acknowledged).
    pub(crate) fn mark_direct(
        &mut self,
        target: &Target,
        token: &str,
        id: Option<&str>,
        mark: Mark,
    ) {
        if let Some(buffer) = self.buffers.get_mut(target)
            && let Some(Entry::Said { mark: m, id: i, .. }) =
                buffer.entries.iter_mut().rev().find(
                    |e| matches!(e, Entry::Said { id: Some(i), mine: true, .. } if i == token),
                )
        {
            *m = mark;
            if let Some(id) = id {
                *i = Some(id.to_owned());
            }
        }
    }

    /// Whether message `id` is among `target`'s newest `within` lines (the
    /// node's event and its history both carry a message read just after
    /// it arrived).
    pub(crate) fn has(&self, target: &Target, id: &str, within: usize) -> bool {
        self.buffers.get(target).is_some_and(|b| {
            b.entries
                .iter()
                .rev()
                .take(within)
                .any(|e| e.id() == Some(id))
        })
    }

    /// `room`'s buffer as the store has it: the newest `messages`, replacing
    /// what it held (after missed events, or on first view).
    pub(crate) fn load(&mut self, room: &str, entries: Vec<Entry>, complete: bool) {
        let buffer = self
            .buffers
            .entry(Target::Room(room.to_owned()))
            .or_insert_with(Buffer::room);
        // Notices seen since are kept, after the messages.
        let notices: Vec<Entry> = buffer
            .entries
            .drain(..)
            .filter(|e| matches!(e, Entry::Notice { .. }))
            .collect();
        buffer.entries = entries.into();
        buffer.entries.extend(notices);
        buffer.complete = complete;
        buffer.stale = false;
        buffer.scroll = 0;
        buffer.below = 0;
    }

    /// An older page from the store, put before what `room` holds; the view
    /// stays where it is.
    pub(crate) fn prepend(&mut self, room: &str, entries: Vec<Entry>, complete: bool) {
        if let Some(buffer) = self.buffers.get_mut(&Target::Room(room.to_owned())) {
            for entry in entries.into_iter().rev() {
                buffer.entries.push_front(entry);
            }
            buffer.complete = complete;
        }
    }

    /// Every room's lines may have a gap: each is read again before shown.
    pub(crate) fn all_stale(&mut self) {
        for (target, buffer) in &mut self.buffers {
            if matches!(target, Target::Room(_)) {
                buffer.stale = true;
            }
        }
    }

    /// The room shown, if its buffer must be read from the store first.
    pub(crate) fn stale_focus(&self) -> Option<String> {
        match &self.focus {
            Some(Target::Room(room))
                if self
                    .buffers
                    .get(&Target::Room(room.clone()))
                    .is_none_or(|b| b.stale) =>
            {
                Some(room.clone())
            }
            _ => None,
        }
    }

    /// What a terminal event means.
    pub(crate) fn on_event(&mut self, event: &TermEvent, known: &Known) -> Action {
        match event {
            TermEvent::Resize(w, h) => {
                self.size = (*w, *h);
                self.clamp_scroll();
                Action::Redraw
            }
            TermEvent::Paste(text) => {
                // One line: a paste's line breaks become spaces.
                for c in text.chars() {
                    let c = if c == '\n' || c == '\r' { ' ' } else { c };
                    self.input.handle(tui_input::InputRequest::InsertChar(c));
                }
                Action::Redraw
            }
            TermEvent::Key(key) if key.kind != KeyEventKind::Release => self.on_key(*key, known),
            _ => Action::Nothing,
        }
    }

    fn on_key(&mut self, key: KeyEvent, known: &Known) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if key.code != KeyCode::Tab && key.code != KeyCode::BackTab {
            self.completion = None;
        }
        match key.code {
            KeyCode::Char('c') if ctrl => Action::Interrupt,
            KeyCode::Char('d') if ctrl => {
                if self.input.value().is_empty() {
                    Action::Quit
                } else {
                    self.input.handle(tui_input::InputRequest::DeleteNextChar);
                    Action::Redraw
                }
            }
            KeyCode::Char('l') if ctrl => Action::Redraw,
            KeyCode::Char(c @ '1'..='9') if alt => {
                let n = (c as usize) - ('1' as usize);
                self.targets()
                    .get(n)
                    .cloned()
                    .map_or(Action::Nothing, Action::Focus)
            }
            KeyCode::Char('n') if ctrl => self.step(1),
            KeyCode::Char('p') if ctrl => self.step(-1),
            KeyCode::PageUp => self.page(true),
            KeyCode::PageDown => self.page(false),
            KeyCode::Enter => {
                let line = self.input.value_and_reset();
                self.recall = None;
                Action::Submit(line)
            }
            KeyCode::Up if self.secret.is_none() => {
                self.recall_step(true);
                Action::Redraw
            }
            KeyCode::Down if self.secret.is_none() => {
                self.recall_step(false);
                Action::Redraw
            }
            KeyCode::Tab if self.secret.is_none() => {
                self.tab(known);
                Action::Redraw
            }
            _ => {
                self.input.handle_event(&TermEvent::Key(key));
                Action::Redraw
            }
        }
    }

    /// Ctrl+N / Ctrl+P: the next or previous conversation.
    fn step(&mut self, by: isize) -> Action {
        let targets = self.targets();
        if targets.is_empty() {
            return Action::Nothing;
        }
        let at = self
            .focus
            .as_ref()
            .and_then(|f| targets.iter().position(|t| t == f))
            .unwrap_or(0);
        let n = targets.len() as isize;
        let next = ((at as isize + by) % n + n) % n;
        Action::Focus(targets[next as usize].clone())
    }

    /// PgUp / PgDn: a screen less a row.
    fn page(&mut self, up: bool) -> Action {
        let step = self.text_height().saturating_sub(1).max(1);
        let (width, height) = (self.text_width(), self.text_height());
        let Some(target) = self.focus.clone() else {
            return Action::Nothing;
        };
        let Some(buffer) = self.buffers.get_mut(&target) else {
            return Action::Nothing;
        };
        let total = buffer.rows(width);
        let top = total.saturating_sub(height);
        if up {
            let want = buffer.scroll + step;
            buffer.scroll = want.min(top);
            if want > top
                && !buffer.complete
                && let Target::Room(room) = &target
                && let Some(before) = buffer.oldest_id().map(str::to_owned)
            {
                // The page read next makes room to scroll on into.
                buffer.wanted = Some(want);
                return Action::Older {
                    room: room.clone(),
                    before,
                };
            }
        } else {
            buffer.scroll = buffer.scroll.saturating_sub(step);
            if buffer.scroll == 0 {
                buffer.below = 0;
            }
        }
        Action::Redraw
    }

    /// After the page read for [`Action::Older`]: scroll on into it, to
    /// where PgUp meant to go.
    pub(crate) fn scroll_into_page(&mut self, room: &str) {
        let (width, height) = (self.text_width(), self.text_height());
        if let Some(buffer) = self.buffers.get_mut(&Target::Room(room.to_owned())) {
            let top = buffer.rows(width).saturating_sub(height);
            if let Some(want) = buffer.wanted.take() {
                buffer.scroll = want.min(top);
            }
        }
    }

    fn clamp_scroll(&mut self) {
        let (width, height) = (self.text_width(), self.text_height());
        for buffer in self.buffers.values_mut() {
            let top = buffer.rows(width).saturating_sub(height);
            buffer.scroll = buffer.scroll.min(top);
        }
    }

    /// `/clear`: the conversation shown starts empty.
    pub(crate) fn clear(&mut self) {
        if let Some(buffer) = self.focus.as_ref().and_then(|t| self.buffers.get_mut(t)) {
            buffer.entries.clear();
            buffer.scroll = 0;
            buffer.below = 0;
        }
    }

    /// Adds an entered line to Up/Down history.
    pub(crate) fn remember(&mut self, line: String) {
        if self.history.back() != Some(&line) {
            self.history.push_back(line);
        }
        while self.history.len() > HISTORY_CAP {
            self.history.pop_front();
        }
    }

    fn recall_step(&mut self, older: bool) {
        let len = self.history.len();
        let next = match (&self.recall, older) {
            (None, true) if len > 0 => Some(len - 1),
            (None, _) => return,
            (Some((i, _)), true) => Some(i.saturating_sub(1)),
            (Some((i, _)), false) if i + 1 < len => Some(i + 1),
            (Some(_), false) => None,
        };
        match next {
            Some(i) => {
                let draft = match self.recall.take() {
                    Some((_, draft)) => draft,
                    None => self.input.value().to_owned(),
                };
                self.input = Input::new(self.history[i].clone());
                self.recall = Some((i, draft));
            }
            None => {
                if let Some((_, draft)) = self.recall.take() {
                    self.input = Input::new(draft);
                }
            }
        }
    }

    /// Tab: the first candidate, then each next one in turn.
    fn tab(&mut self, known: &Known) {
        if let Some(c) = &mut self.completion {
            if c.candidates.is_empty() {
                return;
            }
            c.next = (c.next + 1) % c.candidates.len();
            let line = format!("{}{}", &c.before[..c.start], c.candidates[c.next]);
            self.input = Input::new(line);
            return;
        }
        let line = self.input.value().to_owned();
        let pos = line
            .char_indices()
            .nth(self.input.cursor())
            .map_or(line.len(), |(i, _)| i);
        // Completes the word before the cursor; what follows it is dropped
        // only if the cursor was at the end.
        let before = line[..pos].to_owned();
        let (start, candidates) = complete(known, &before, pos);
        if let Some(first) = candidates.first() {
            self.input = Input::new(format!("{}{first}{}", &before[..start], &line[pos..]))
                .with_cursor(before[..start].chars().count() + first.chars().count());
        }
        self.completion = Some(Completion {
            before,
            start,
            candidates,
            next: 0,
        });
    }
}

/// A page read from the store, as entries: our own messages marked saved.
pub(crate) fn entries(
    messages: &[ChatMessage],
    me: &str,
    names: &mut Names,
    mentions: impl Fn(&str) -> bool,
) -> Vec<Entry> {
    messages
        .iter()
        .map(|m| {
            let mine = m.from == me;
            let who = if mine {
                clean(&m.nick)
            } else {
                names.author(&m.from, &m.nick)
            };
            Entry::said(&Said {
                id: Some(&m.id),
                ts: m.ts,
                from: &m.from,
                who: &who,
                text: &m.text,
                mine,
                mention: !mine && mentions(&m.text),
                mark: if mine { Mark::Saved } else { Mark::None },
                recovered: false,
            })
        })
        .collect()
}

/// The width messages wrap at on a screen of `size`.
fn text_width_at(size: (u16, u16)) -> usize {
    usize::from(super::draw::layout(size).messages.width).max(1)
}

/// The rows `entry` takes at `width`, as drawn.
pub(crate) fn rows(entry: &Entry, width: usize) -> usize {
    super::draw::rows_of(entry, width)
}

/// The display width of `s`.
pub(crate) fn width_of(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}
