//! The terminal front end: reads commands (line mode), prints events as
//! readable lines or `--json` objects. A client of [`Node`] only. In a
//! terminal, a line editor reads what the user types (`editor`); from a
//! pipe, plain lines. What the session knows and decides is `session`.

mod command;
mod editor;
mod names;
mod render;
mod session;
mod tty;
mod tui;

use std::{io::Write, path::PathBuf, sync::Mutex};

use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt},
    sync::{broadcast, mpsc},
};

pub use command::{HELP, Input, JoinKey, parse};

use command::HISTORY_DEFAULT;
use editor::{Answer, Ask, Editor};
pub use render::{Renderer, Style};
use session::Model;
pub use tui::Frames;

use crate::node::{Error, Event, Events, Node, RoomInfo};
use crate::ticket::Ticket;

/// Lines from background tasks (direct-message replies) back to the printer.
const LINE_CAP: usize = 64;
/// Messages of a room shown on start and on `/join`.
const BACKLOG: usize = 20;
/// How many recent messages `/names` looks through for members who are
/// not connected.
const NAMES_FROM_RECENT: usize = 100;
/// Lines held back while a passphrase is typed, shown after it.
const HELD_CAP: usize = 4096;

/// The input history's file name in the data dir.
pub const INPUT_HISTORY_FILE: &str = "input_history";

/// What ended the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The user typed `/quit` or closed stdin.
    Quit,
    /// A signal arrived (or Ctrl+C at the prompt).
    Signal,
    /// The node stopped by itself.
    NodeStopped,
}

/// What a session is started with, besides the node and its input.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lines for a person or NDJSON.
    pub style: Style,
    /// The room current at start.
    pub room: String,
    /// This program as it was started, for the dial hint others paste.
    pub program: String,
    /// The HTTP API's address and where its token is, for the banner; None
    /// when it is off.
    pub http: Option<String>,
    /// Where logs go, when not to stderr (shown by `/status`).
    pub log_file: Option<PathBuf>,
    /// Lines about other front ends (the SSH server) for the banner.
    pub notes: Vec<String>,
}

/// Where the user's input comes from.
pub enum Front<R> {
    /// None: a headless node only prints, and in human style never a
    /// message's text.
    Headless,
    /// Plain lines (a pipe, a script).
    Lines(R),
    /// A person at a terminal: a line editor, its input history kept in
    /// `history` (None: in memory only).
    Terminal {
        /// The input history file.
        history: Option<PathBuf>,
    },
    /// A person at a terminal, full screen: rooms, messages, members, a
    /// status line and an input line.
    FullScreen {
        /// The input history file (shared with line mode).
        history: Option<PathBuf>,
    },
}

/// A ticket drawn as a QR code in text (two rows of modules per line, so
/// it stays square in a terminal), with the quiet zone a reader needs.
/// Drawn light on dark: block characters are the terminal's foreground,
/// which is light on most terminals, so the code's dark modules are blanks.
pub fn qr(ticket: &str) -> String {
    match qrcode::QrCode::new(ticket.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build(),
        Err(e) => format!("(no QR code: {e})"),
    }
}

/// Whether stdin and stdout are both a terminal: a person types and reads.
pub fn is_terminal() -> bool {
    tty::stdin_is_terminal() && tty::stdout_is_terminal()
}

/// Runs the full-screen client on any ratatui `backend` (sized `size`),
/// with terminal events from `keys`, in `room`, until the events end or
/// the user quits; returns how it ended and what drawing cost. The local
/// terminal's client is this with crossterm on stdout; the bench runs it
/// on ratatui's test backend.
/// `user`: None for this node's own user; a remote user's name (SSH) for
/// whom commands that change the whole node are refused.
pub async fn full_screen<B, K>(
    node: Node,
    events: Events,
    keys: K,
    backend: B,
    size: (u16, u16),
    room: &str,
    user: Option<&str>,
) -> (Exit, Frames)
where
    B: ratatui::backend::Backend,
    K: futures::Stream<Item = std::io::Result<crossterm::event::Event>> + Unpin,
{
    let session = Session::serving(node, room, user).await;
    let setup = tui::Setup {
        history: None,
        http: None,
        notes: Vec::new(),
    };
    tui::serve(
        session,
        events,
        keys,
        backend,
        size,
        setup,
        std::future::pending(),
    )
    .await
}

/// Runs line mode for a remote user (SSH without a terminal): lines from
/// `input`, output lines to `out`, until the input ends or `/quit`.
/// Commands that change the whole node are refused.
pub async fn serve_lines<R: AsyncBufRead + Unpin>(
    node: Node,
    mut events: Events,
    input: R,
    out: mpsc::Sender<Vec<u8>>,
    room: &str,
    user: &str,
) -> Exit {
    let mut session = Session::serving(node, room, Some(user)).await;
    session.output = Output::Remote(out);
    session.reader = Reader::Lines(input.lines());
    let never = std::future::pending::<()>();
    tokio::pin!(never);
    session.run(&mut events, &mut never).await
}

/// Messages (room and direct) a remote user may send per second, and at
/// once.
const REMOTE_RATE: (u32, u32) = (5, 20);

/// A remote user of the node (SSH): their name, and how fast they may
/// send.
struct Remote {
    user: String,
    limiter: governor::DefaultDirectRateLimiter,
}

impl Remote {
    fn new(user: &str) -> Remote {
        let (per_second, burst) = REMOTE_RATE;
        let rate = |n| std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::per_second(rate(per_second)).allow_burst(rate(burst));
        Remote {
            user: user.to_owned(),
            limiter: governor::RateLimiter::direct(quota),
        }
    }
}

/// Sends direct messages for a session: as the node's own user, or as a
/// remote user (`user@<node nick>`).
struct DirectSender {
    node: Node,
    user: Option<String>,
}

impl DirectSender {
    async fn send(&self, to: &str, text: &str) -> Result<crate::node::Receipt, Error> {
        match &self.user {
            Some(user) => self.node.send_direct_as(to, text, user).await,
            None => self.node.send_direct(to, text).await,
        }
    }
}

/// Where a session's lines go.
enum Output {
    /// This process's terminal: stdout, or above the line editor.
    Local,
    /// The full-screen client's queue, shown as notices.
    Queue(Sink),
    /// A remote client without a terminal (SSH line mode).
    Remote(mpsc::Sender<Vec<u8>>),
}

/// Where input comes from, once started.
enum Reader<R> {
    Nothing,
    Lines(tokio::io::Lines<R>),
    /// Plain lines from stdin, when the editor could not start.
    Stdin(tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>),
    Editor(Editor),
}

/// Runs the terminal session until the user quits, stdin ends, a signal
/// arrives or the node stops.
pub async fn run<R: AsyncBufRead + Unpin>(
    node: Node,
    mut events: Events,
    front: Front<R>,
    options: Options,
) -> Exit {
    let Options {
        style,
        room,
        program,
        http,
        log_file,
        notes,
    } = options;
    let room = room.as_str();
    let model = Model::new(Some(room.to_owned()));
    let rooms = node.rooms().await.unwrap_or_default();
    model.set_rooms(&rooms);
    if let Front::FullScreen { history } = front {
        let session = Session::new(
            node,
            Renderer::new(style).with_program(&program),
            model,
            log_file,
        );
        return tui::run_local(session, events, history, http, notes).await;
    }
    let headless = matches!(front, Front::Headless);
    let mut session = Session::new(
        node,
        // Errors dim in a terminal a person reads; plain in a pipe.
        Renderer::new(style)
            .with_program(&program)
            .with_dim_errors(matches!(front, Front::Terminal { .. })),
        model,
        log_file,
    );
    session.prompt = !headless && style == Style::Human && tty::stdin_is_terminal();
    session.show_text = !headless || style == Style::Json;
    if style == Style::Human
        && let Ok(status) = session.node.status().await
    {
        println!(
            "p2p-chat {} · nick {} · room #{} · /help for commands",
            env!("CARGO_PKG_VERSION"),
            crate::sanitize::for_terminal(&status.nick),
            crate::sanitize::for_terminal(room),
        );
        println!("  peer id {}", status.peer_id);
        match &http {
            Some(http) => println!("  HTTP API {http}"),
            None => println!("  HTTP API off"),
        }
        for note in &notes {
            println!("  {note}");
        }
        if let Some(log) = &session.log_file {
            println!("  log {}", log.display());
        }
    }
    if session.show_text {
        session.backlog(room, &rooms).await;
    }
    // The terminal as it was, put back at /quit, end of input, a signal
    // (even at the hidden passphrase prompt, and when the caller drops this
    // future on a signal) or a panic.
    let _terminal = session.prompt.then(tty::Guard::new).flatten();
    session.reader = match front {
        Front::Headless => Reader::Nothing,
        Front::Lines(r) => Reader::Lines(r.lines()),
        Front::FullScreen { .. } => Reader::Nothing,
        Front::Terminal { history } => match Editor::start(history, session.model.known()) {
            Ok(editor) => Reader::Editor(editor),
            Err(e) => {
                tracing::warn!(error = %e, "no line editor: reading plain lines");
                session.prompt = false;
                Reader::Stdin(tokio::io::BufReader::new(tokio::io::stdin()).lines())
            }
        },
    };
    session.ask_line();
    let shutdown = crate::shutdown::signal();
    tokio::pin!(shutdown);
    session.run(&mut events, &mut shutdown).await
}

impl<R: AsyncBufRead + Unpin> Session<R> {
    async fn run(
        &mut self,
        events: &mut Events,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Exit {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => self.print_event(&event),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        self.print(&self.render.error(&format!("output too slow: {n} events were not shown")));
                    }
                    Err(broadcast::error::RecvError::Closed) => return Exit::NodeStopped,
                },
                answer = next_answer(&mut self.reader) => match answer {
                    Answer::Line(line) => {
                        if self.handle_line(&line).await == Flow::Quit {
                            return Exit::Quit;
                        }
                        if self.awaiting_passphrase.is_none() {
                            self.ask_line();
                        }
                    }
                    Answer::Secret(pass) => {
                        self.passphrase(pass.expose()).await;
                        self.ask_line();
                    }
                    Answer::End => return Exit::Quit,
                    Answer::Interrupted => return Exit::Signal,
                },
                Some(line) = self.lines.1.recv() => self.print(&line),
                _ = shutdown.as_mut() => return Exit::Signal,
            }
        }
    }

    /// Asks the editor (if any) for the next line, with the current room
    /// in the prompt and the last line for history if it may be kept.
    fn ask_line(&mut self) {
        if let Reader::Editor(editor) = &self.reader {
            editor.ask(Ask::Line {
                prompt: self.model.prompt(),
                remember: self.remember.take(),
            });
        }
    }
}

async fn next_answer<R: AsyncBufRead + Unpin>(reader: &mut Reader<R>) -> Answer {
    match reader {
        Reader::Lines(lines) => plain(lines.next_line().await),
        Reader::Stdin(lines) => plain(lines.next_line().await),
        Reader::Editor(editor) => editor.answer().await.unwrap_or(Answer::End),
        Reader::Nothing => std::future::pending().await,
    }
}

/// Why a remote user may not give `input`: it changes the whole node, which
/// is its owner's to change.
fn node_wide(input: &Input) -> Option<&'static str> {
    match input {
        Input::Nick(_) => Some("/nick renames the whole node: not over SSH"),
        Input::Leave(_) => Some("/leave leaves the room for the whole node: not over SSH"),
        Input::Join {
            key: JoinKey::Ask | JoinKey::Passphrase(_),
            ..
        } => Some("a room's passphrase is given on the node itself: not over SSH"),
        Input::JoinTicket(_) => Some("/join TICKET dials for the whole node: not over SSH"),
        _ => None,
    }
}

/// `room`'s entry in the node's rooms.
fn room_of<'a>(rooms: &'a [RoomInfo], room: &str) -> Option<&'a RoomInfo> {
    rooms.iter().find(|r| r.room == room)
}

fn plain(line: std::io::Result<Option<String>>) -> Answer {
    match line {
        Ok(Some(line)) => Answer::Line(line),
        Ok(None) => Answer::End,
        Err(e) => {
            tracing::warn!(error = %e, "stdin");
            Answer::End
        }
    }
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

struct Session<R> {
    node: Node,
    render: Renderer,
    model: Model,
    lines: (mpsc::Sender<String>, mpsc::Receiver<String>),
    /// stdin is a terminal a person types into: ask for passphrases there,
    /// with echo off.
    prompt: bool,
    /// Print message texts: not on a headless node in human style, whose
    /// stdout is a log (`--json` is a stream the user asked for).
    show_text: bool,
    /// The room whose passphrase is being asked for: by
    /// `/join ROOM --encrypted`, never otherwise.
    awaiting_passphrase: Option<String>,
    /// The last line, if input history may keep it.
    remember: Option<String>,
    /// Lines held back while the passphrase prompt is on screen, and how
    /// many more did not fit.
    held: Mutex<Option<(Vec<String>, usize)>>,
    reader: Reader<R>,
    /// Where logs go, if to a file.
    log_file: Option<PathBuf>,
    /// Where lines go.
    output: Output,
    /// Show a room's last messages on `/join` (the full-screen client
    /// reads them into the room's pane itself).
    show_backlog: bool,
    /// A remote user: commands that change the whole node are refused,
    /// messages are theirs and rate-limited.
    remote: Option<Remote>,
}

/// Lines for the full-screen client to show, in order.
type Sink = std::sync::Arc<Mutex<Vec<String>>>;

impl<R: AsyncBufRead + Unpin> Session<R> {
    /// A session that prints to stdout, with no input yet.
    fn new(node: Node, render: Renderer, model: Model, log_file: Option<PathBuf>) -> Self {
        Session {
            node,
            render,
            model,
            log_file,
            lines: mpsc::channel(LINE_CAP),
            prompt: false,
            show_text: true,
            awaiting_passphrase: None,
            remember: None,
            held: Mutex::new(None),
            reader: Reader::Nothing,
            output: Output::Local,
            show_backlog: true,
            remote: None,
        }
    }

    /// A session in `room` for a front end other than this process's
    /// terminal: the full-screen client's or a remote user's.
    async fn serving(node: Node, room: &str, user: Option<&str>) -> Self {
        let model = Model::new(Some(room.to_owned()));
        model.set_rooms(&node.rooms().await.unwrap_or_default());
        let mut session = Session::new(node, Renderer::new(Style::Human), model, None);
        session.remote = user.map(Remote::new);
        session
    }

    fn print(&self, line: &str) {
        match &self.output {
            Output::Local => {}
            Output::Queue(sink) => {
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line.to_owned());
                return;
            }
            Output::Remote(out) => {
                let mut bytes = line.as_bytes().to_vec();
                bytes.push(b'\n');
                if out.try_send(bytes).is_err() {
                    tracing::warn!("ssh: a line was not sent: the client stopped reading");
                }
                return;
            }
        }
        if let Some(held) = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
        {
            if held.0.len() < HELD_CAP {
                held.0.push(line.to_owned());
            } else {
                held.1 += 1;
            }
            return;
        }
        if let Reader::Editor(editor) = &self.reader {
            editor.print(line);
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn print_event(&mut self, event: &Event) {
        let notice = self.model.observe(event);
        if !self.show_text && event.carries_text() {
            return;
        }
        let line = self
            .model
            .names(|names| self.render.event(event, names, &notice));
        if let Some(line) = line {
            self.print(&line);
        }
    }

    fn print_result<T>(&self, result: Result<T, Error>, ok: impl FnOnce(T) -> Option<String>) {
        match result {
            Ok(v) => {
                if let Some(line) = ok(v) {
                    self.print(&line);
                }
            }
            Err(e) => self.print(&self.render.error(&e.to_string())),
        }
    }

    /// The answer to the passphrase question: join, or cancel if empty.
    async fn passphrase(&mut self, pass: &str) {
        let Some(room) = self.awaiting_passphrase.take() else {
            return;
        };
        let pass = pass.trim();
        if pass.is_empty() {
            let room = crate::sanitize::for_terminal(&room);
            self.print(&self.render.info(&format!("not joined #{room}: cancelled")));
        } else {
            let result = self.node.join_encrypted(&room, pass).await;
            self.joined(room, true, result).await;
        }
        self.release_held();
    }

    /// Shows the lines held back while the passphrase was asked for.
    fn release_held(&self) {
        let held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((lines, more)) = held {
            for line in lines {
                self.print(&line);
            }
            if more > 0 {
                self.print(&self.render.error(&format!(
                    "{more} lines were not shown while the passphrase was asked for: /history shows messages"
                )));
            }
        }
    }

    async fn handle_line(&mut self, line: &str) -> Flow {
        if self.awaiting_passphrase.is_some() {
            // Plain lines: the answer is the next line (echo off in a
            // terminal).
            if self.prompt {
                tty::set_echo(true);
                println!();
            }
            self.passphrase(line).await;
            return Flow::Continue;
        }
        let input = parse(line);
        if self.model.keep_in_history(&input) {
            self.remember = Some(line.to_owned());
        }
        let input = match input {
            Ok(input) => input,
            Err(e) => {
                self.print(&self.render.error(&e));
                return Flow::Continue;
            }
        };
        if let Some(refusal) = self.remote.as_ref().and_then(|_| node_wide(&input)) {
            self.print(&self.render.error(refusal));
            return Flow::Continue;
        }
        let input = match input {
            Input::JoinTicket(ticket) => match self.reach_ticket(&ticket).await {
                Some(join) => join,
                None => return Flow::Continue,
            },
            other => other,
        };
        match input {
            Input::Nothing => {}
            Input::Quit => return Flow::Quit,
            Input::JoinTicket(_) => {}
            Input::Invite { room, qr } => self.invite(room, qr).await,
            Input::Help => self.print(&self.render.info(HELP)),
            Input::Say(text) => self.say(&text).await,
            Input::Me(action) => self.say(&format!("/me {action}")).await,
            Input::Whois(who) => self.whois(&who).await,
            Input::Names => self.names().await,
            Input::Clear => {
                if self.prompt {
                    let mut out = std::io::stdout().lock();
                    let _ = write!(out, "\x1b[H\x1b[2J");
                    let _ = out.flush();
                }
            }
            Input::Msg { to, text } => self.send_direct(to, text),
            Input::Join {
                room,
                key: JoinKey::Ask,
            } => {
                let question = format!(
                    "passphrase for #{} (hidden, empty line cancels): ",
                    crate::sanitize::for_terminal(&room)
                );
                if let Reader::Editor(editor) = &self.reader {
                    *self
                        .held
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Vec::new(), 0));
                    editor.ask(Ask::Secret(question));
                } else if self.prompt {
                    print!("{question}");
                    let _ = std::io::stdout().flush();
                    tty::set_echo(false);
                } else {
                    self.print(&self.render.info(question.trim_end()));
                }
                self.awaiting_passphrase = Some(room);
            }
            Input::Join { room, key } => {
                let (result, encrypted) = match &key {
                    JoinKey::Passphrase(pass) => {
                        (self.node.join_encrypted(&room, pass.expose()).await, true)
                    }
                    _ => (self.node.join(&room).await, false),
                };
                self.joined(room, encrypted, result).await;
            }
            Input::Leave(room) => self.leave(room).await,
            Input::Switch(room) => {
                let joined = self
                    .node
                    .rooms()
                    .await
                    .map(|rs| rs.iter().any(|r| r.room == room));
                match joined {
                    Ok(true) => {
                        self.print(&self.render.info(&format!("current room: #{room}")));
                        self.model.set_current(Some(room));
                    }
                    Ok(false) => self.print(
                        &self
                            .render
                            .error(&format!("not in room '{room}': /join it first")),
                    ),
                    Err(e) => self.print(&self.render.error(&e.to_string())),
                }
            }
            Input::Rooms => {
                let result = self.node.rooms().await;
                let render = &self.render;
                if let Ok(rooms) = &result {
                    self.model.set_rooms(rooms);
                }
                let (current, model) = (self.model.current(), &self.model);
                self.print_result(result, |rooms| {
                    Some(render.rooms(&rooms, current, |r| model.unread(r)))
                });
            }
            Input::Peers => {
                let result = self.node.peers().await;
                self.print_result(result, |peers| Some(self.render.peers(&peers)));
            }
            Input::History(n) => match self.model.current().map(str::to_owned) {
                Some(room) => match self.node.history(&room, n, None).await {
                    Ok(messages) => {
                        let text = self
                            .model
                            .names(|names| self.render.history(&room, &messages, names));
                        self.print(&text);
                        let rooms = self.node.rooms().await.unwrap_or_default();
                        let unreadable = room_of(&rooms, &room).map(|r| r.unreadable);
                        if let Some(n @ 1..) = unreadable
                            && !self.render.is_json()
                        {
                            self.print(&format!(
                                "({n} message(s) in #{} could not be read and are not listed: see the notices above)",
                                crate::sanitize::for_terminal(&room)
                            ));
                        }
                    }
                    Err(e) => self.print(&self.render.error(&e.to_string())),
                },
                None => self.print(&self.render.error("no current room: /join ROOM first")),
            },
            Input::Search(text) => match self.node.search(&text, None, HISTORY_DEFAULT).await {
                Ok(found) => {
                    let lines = self
                        .model
                        .names(|names| self.render.search(&text, &found, names));
                    self.print(&lines);
                }
                Err(e) => self.print(&self.render.error(&e.to_string())),
            },
            Input::Nick(nick) => {
                let result = self.node.set_nick(&nick).await;
                let info = self.render.info(&format!("you are now {nick}"));
                self.print_result(result, |_| Some(info));
            }
            Input::Status => {
                let result = self.node.status().await;
                let log = self.log_file.as_ref().map(|p| p.display().to_string());
                self.print_result(result, |s| Some(self.render.status(&s, log.as_deref())));
            }
        }
        Flow::Continue
    }

    /// Whether a remote user may send one more message now; if not, a line
    /// says so.
    fn within_rate(&self) -> bool {
        let Some(remote) = &self.remote else {
            return true;
        };
        if remote.limiter.check().is_ok() {
            return true;
        }
        let (per_second, burst) = REMOTE_RATE;
        self.print(&self.render.error(&format!(
            "not sent: at most {per_second} messages a second ({burst} at once) over SSH; send it again in a moment"
        )));
        false
    }

    /// The nick this session's messages carry when the node's is `nick`.
    fn nick_shown(&self, nick: &str) -> String {
        match &self.remote {
            Some(remote) => format!("{}@{nick}", remote.user),
            None => nick.to_owned(),
        }
    }

    /// What sends this session's direct messages, as its user.
    fn direct_sender(&self) -> DirectSender {
        DirectSender {
            node: self.node.clone(),
            user: self.remote.as_ref().map(|r| r.user.clone()),
        }
    }

    /// Sends `text` to the current room.
    async fn say(&self, text: &str) {
        let Some(room) = self.model.current() else {
            self.print(&self.render.error("no current room: /join ROOM first"));
            return;
        };
        if !self.within_rate() {
            return;
        }
        let result = match &self.remote {
            Some(remote) => self.node.publish_as(room, text, &remote.user).await,
            None => self.node.publish(room, text).await,
        };
        match result {
            // Its `not_saved` event says so, with the id.
            Err(crate::node::Error::NotSaved { .. }) => {}
            result => self.print_result(result, |_| None),
        }
    }

    /// Who `who` is: each peer it may mean, with its full id and, if
    /// connected, how.
    async fn whois(&self, who: &str) {
        let found = self.model.names(|names| names.find(who));
        if found.is_empty() {
            self.print(&self.render.error(&format!(
                "no one called {} seen: /names and /peers list who is here",
                crate::sanitize::for_terminal(who)
            )));
            return;
        }
        let connected = self.node.peers().await.unwrap_or_default();
        let rows: Vec<(String, String, Option<&crate::node::PeerInfo>)> = found
            .into_iter()
            .map(|peer| {
                let info = connected.iter().find(|p| p.peer == peer);
                (self.model.names(|n| n.show(&peer)), peer, info)
            })
            .collect();
        self.print(&self.render.whois(&rows));
    }

    /// A ticket typed with `/join`: its node is dialed, and the join it
    /// stands for is returned (an encrypted room's passphrase is asked).
    async fn reach_ticket(&mut self, typed: &str) -> Option<Input> {
        let ticket = match typed.parse::<Ticket>() {
            Ok(ticket) => ticket,
            Err(e) => {
                self.print(&self.render.error(&e.to_string()));
                return None;
            }
        };
        if let Err(e) = self.node.reach(ticket.addrs.clone()).await {
            self.print(&self.render.error(&e.to_string()));
        }
        Some(Input::Join {
            room: ticket.room,
            key: if ticket.encrypted {
                JoinKey::Ask
            } else {
                JoinKey::Open
            },
        })
    }

    /// `/invite`: a ticket for a room, as a line (and a QR code).
    async fn invite(&mut self, room: Option<String>, qr: bool) {
        let Some(room) = room.or_else(|| self.model.current().map(str::to_owned)) else {
            self.print(&self.render.error("no current room: /invite ROOM"));
            return;
        };
        let result = self.node.invite(&room).await;
        self.print_result(result, |ticket| Some(self.render.invite(&ticket, qr)));
    }

    /// The current room's members: connected peers in it, then authors of
    /// its recent messages who are not connected.
    async fn names(&self) {
        let Some(room) = self.model.current() else {
            self.print(&self.render.error("no current room: /join ROOM first"));
            return;
        };
        let members = match self.node.members(room).await {
            Ok(members) => members,
            Err(e) => return self.print(&self.render.error(&e.to_string())),
        };
        let me = self.node.status().await.ok();
        let recent = self
            .node
            .history(room, NAMES_FROM_RECENT, None)
            .await
            .unwrap_or_default();
        let line = self.model.names(|names| {
            let mut away: Vec<String> = Vec::new();
            for m in recent.iter().rev() {
                let mine = me.as_ref().is_some_and(|s| s.peer_id == m.from);
                if !mine && !members.contains(&m.from) && !away.contains(&m.from) {
                    names.author(&m.from, &m.nick);
                    away.push(m.from.clone());
                }
            }
            let me = me.as_ref().map(|s| s.nick.as_str());
            self.render.names(room, me, &members, &away, names)
        });
        self.print(&line);
    }

    async fn joined(&mut self, room: String, encrypted: bool, result: Result<bool, Error>) {
        let info = self.render.info(&format!(
            "current room: #{}",
            crate::sanitize::for_terminal(&room)
        ));
        let ok = result.is_ok();
        self.print_result(result, |_| Some(info));
        if ok {
            // As the node has it: joining an encrypted room again without
            // its passphrase keeps its key.
            let rooms = match self.node.rooms().await {
                Ok(rooms) => {
                    self.model.set_rooms(&rooms);
                    rooms
                }
                Err(_) => {
                    self.model.joined(&room, encrypted);
                    Vec::new()
                }
            };
            if self.show_backlog {
                self.backlog(&room, &rooms).await;
            }
            self.model.set_current(Some(room));
        }
    }

    /// The room's last messages, after a line saying how many came before
    /// (`rooms`: the node's rooms, just read).
    async fn backlog(&self, room: &str, rooms: &[RoomInfo]) {
        let Ok(messages) = self.node.history(room, BACKLOG, None).await else {
            return;
        };
        let kept = room_of(rooms, room).map_or(0, |r| r.messages);
        let earlier = kept.saturating_sub(messages.len() as u64);
        let text = self
            .model
            .names(|names| self.render.backlog(room, &messages, earlier, names));
        if let Some(text) = text {
            self.print(&text);
        }
    }

    async fn leave(&mut self, room: Option<String>) {
        let Some(room) = room.or_else(|| self.model.current().map(str::to_owned)) else {
            self.print(&self.render.error("no current room to leave"));
            return;
        };
        match self.node.leave(&room).await {
            Ok(true) => {
                self.model.left(&room);
                if self.model.current() == Some(room.as_str()) {
                    let next = self
                        .node
                        .rooms()
                        .await
                        .ok()
                        .and_then(|rs| rs.first().map(|r| r.room.clone()));
                    let now = match &next {
                        Some(r) => format!("current room: #{}", crate::sanitize::for_terminal(r)),
                        None => "no current room: /join ROOM".into(),
                    };
                    self.model.set_current(next);
                    self.print(&self.render.info(&now));
                }
            }
            Ok(false) => self.print(&self.render.error(&format!("not in room '{room}'"))),
            Err(e) => self.print(&self.render.error(&e.to_string())),
        }
    }

    /// Sends in the background so typing goes on while the receipt comes.
    /// Failures after sending arrive as `direct_failed` events; failures
    /// before (unknown peer, too large) are printed here.
    fn send_direct(&self, to: String, text: String) {
        if !self.within_rate() {
            return;
        }
        if !self.render.is_json() {
            self.print(&format!(
                "-> [{}] {}",
                crate::sanitize::for_terminal(&to),
                crate::sanitize::for_terminal(&text)
            ));
        }
        let sender = self.direct_sender();
        let lines = self.lines.0.clone();
        let style = if self.render.is_json() {
            Style::Json
        } else {
            Style::Human
        };
        tokio::spawn(async move {
            if let Err(e) = sender.send(&to, &text).await {
                let sent = matches!(
                    e,
                    Error::Timeout(_) | Error::DirectFailed { .. } | Error::NodeStopped
                );
                if !sent {
                    let _ = lines.send(Renderer::new(style).error(&e.to_string())).await;
                }
            }
        });
    }
}
