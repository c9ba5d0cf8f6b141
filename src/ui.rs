//! The terminal front end: reads commands from stdin (line mode), prints
//! events as readable lines or `--json` objects. A client of [`Node`] only.

mod command;
mod render;
mod tty;

use std::io::Write;

use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt},
    sync::{broadcast, mpsc},
};

pub use command::{HELP, Input, JoinKey, parse};

use command::HISTORY_DEFAULT;
pub use render::{Renderer, Style};

use crate::node::{Error, Event, Events, Node};

/// Lines from background tasks (direct-message replies) back to the printer.
const LINE_CAP: usize = 64;

/// What ended the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The user typed `/quit` or closed stdin.
    Quit,
    /// A signal arrived.
    Signal,
    /// The node stopped by itself.
    NodeStopped,
}

/// Runs the terminal session until the user quits, stdin ends, a signal
/// arrives or the node stops. With `input` None (headless), only prints,
/// and in human style never a message's text.
pub async fn run<R: AsyncBufRead + Unpin>(
    node: Node,
    mut events: Events,
    input: Option<R>,
    style: Style,
    room: &str,
) -> Exit {
    let mut session = Session {
        node,
        render: Renderer::new(style),
        current: Some(room.to_owned()),
        lines: mpsc::channel(LINE_CAP),
        prompt: input.is_some() && style == Style::Human && tty::stdin_is_terminal(),
        show_text: input.is_some() || style == Style::Json,
        awaiting_passphrase: None,
    };
    if style == Style::Human
        && let Ok(status) = session.node.status().await
    {
        println!(
            "p2p-chat {} · peer id {} · nick {} · room #{room} · /help for commands",
            env!("CARGO_PKG_VERSION"),
            status.peer_id,
            status.nick
        );
    }
    // The terminal as it was, put back at /quit, end of input, a signal
    // (even at the hidden passphrase prompt, and when the caller drops this
    // future on a signal) or a panic.
    let _terminal = session.prompt.then(tty::Guard::new).flatten();
    let mut input = input.map(|r| r.lines());
    let shutdown = crate::shutdown::signal();
    tokio::pin!(shutdown);
    session.run(&mut events, &mut input, &mut shutdown).await
}

impl Session {
    async fn run<R: AsyncBufRead + Unpin>(
        &mut self,
        events: &mut Events,
        input: &mut Option<tokio::io::Lines<R>>,
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
                line = next_line(input) => match line {
                    Some(line) => {
                        if self.handle_line(&line).await == Flow::Quit {
                            return Exit::Quit;
                        }
                    }
                    None => return Exit::Quit,
                },
                Some(line) = self.lines.1.recv() => self.print(&line),
                _ = shutdown.as_mut() => return Exit::Signal,
            }
        }
    }
}

async fn next_line<R: AsyncBufRead + Unpin>(
    input: &mut Option<tokio::io::Lines<R>>,
) -> Option<String> {
    match input {
        Some(lines) => match lines.next_line().await {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %e, "stdin");
                None
            }
        },
        None => std::future::pending().await,
    }
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

struct Session {
    node: Node,
    render: Renderer,
    current: Option<String>,
    lines: (mpsc::Sender<String>, mpsc::Receiver<String>),
    /// stdin is a terminal a person types into: ask for passphrases there,
    /// with echo off.
    prompt: bool,
    /// Print message texts: not on a headless node in human style, whose
    /// stdout is a log (`--json` is a stream the user asked for).
    show_text: bool,
    /// The room whose passphrase the next line is: asked for by
    /// `/join ROOM --encrypted`, never otherwise.
    awaiting_passphrase: Option<String>,
}

impl Session {
    fn print(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn print_event(&mut self, event: &Event) {
        if !self.show_text && event.carries_text() {
            return;
        }
        if let Some(line) = self.render.event(event) {
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

    async fn handle_line(&mut self, line: &str) -> Flow {
        if let Some(room) = self.awaiting_passphrase.take() {
            if self.prompt {
                tty::set_echo(true);
                println!();
            }
            let pass = line.trim();
            if pass.is_empty() {
                let room = crate::sanitize::for_terminal(&room);
                self.print(&self.render.info(&format!("not joined #{room}: cancelled")));
            } else {
                let result = self.node.join_encrypted(&room, pass).await;
                self.joined(room, result);
            }
            return Flow::Continue;
        }
        let input = match parse(line) {
            Ok(input) => input,
            Err(e) => {
                self.print(&self.render.error(&e));
                return Flow::Continue;
            }
        };
        match input {
            Input::Nothing => {}
            Input::Quit => return Flow::Quit,
            Input::Help => self.print(&self.render.info(HELP)),
            Input::Say(text) => match self.current.clone() {
                Some(room) => {
                    match self.node.publish(&room, &text).await {
                        // Its `not_saved` event says so, with the id.
                        Err(crate::node::Error::NotSaved { .. }) => {}
                        result => self.print_result(result, |_| None),
                    }
                }
                None => self.print(&self.render.error("no current room: /join ROOM first")),
            },
            Input::Msg { to, text } => self.send_direct(to, text),
            Input::Join {
                room,
                key: JoinKey::Ask,
            } => {
                let question = format!(
                    "passphrase for #{} (hidden, empty line cancels): ",
                    crate::sanitize::for_terminal(&room)
                );
                if self.prompt {
                    print!("{question}");
                    let _ = std::io::stdout().flush();
                    tty::set_echo(false);
                } else {
                    self.print(&self.render.info(question.trim_end()));
                }
                self.awaiting_passphrase = Some(room);
            }
            Input::Join { room, key } => {
                let result = match &key {
                    JoinKey::Passphrase(pass) => {
                        self.node.join_encrypted(&room, pass.expose()).await
                    }
                    _ => self.node.join(&room).await,
                };
                self.joined(room, result);
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
                        self.current = Some(room);
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
                let current = self.current.as_deref();
                self.print_result(result, |rooms| Some(render.rooms(&rooms, current)));
            }
            Input::Peers => {
                let result = self.node.peers().await;
                self.print_result(result, |peers| Some(self.render.peers(&peers)));
            }
            Input::History(n) => match self.current.clone() {
                Some(room) => match self.node.history(&room, n, None).await {
                    Ok(messages) => {
                        let text = self.render.history(&room, &messages);
                        self.print(&text);
                    }
                    Err(e) => self.print(&self.render.error(&e.to_string())),
                },
                None => self.print(&self.render.error("no current room: /join ROOM first")),
            },
            Input::Search(text) => match self.node.search(&text, None, HISTORY_DEFAULT).await {
                Ok(found) => {
                    let lines = self.render.search(&text, &found);
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
                self.print_result(result, |s| Some(self.render.status(&s)));
            }
        }
        Flow::Continue
    }

    fn joined(&mut self, room: String, result: Result<bool, Error>) {
        let info = self.render.info(&format!(
            "current room: #{}",
            crate::sanitize::for_terminal(&room)
        ));
        if result.is_ok() {
            self.current = Some(room);
        }
        self.print_result(result, |_| Some(info));
    }

    async fn leave(&mut self, room: Option<String>) {
        let Some(room) = room.or_else(|| self.current.clone()) else {
            self.print(&self.render.error("no current room to leave"));
            return;
        };
        match self.node.leave(&room).await {
            Ok(true) => {
                if self.current.as_deref() == Some(room.as_str()) {
                    self.current = self
                        .node
                        .rooms()
                        .await
                        .ok()
                        .and_then(|rs| rs.first().map(|r| r.room.clone()));
                    let now = match &self.current {
                        Some(r) => format!("current room: #{r}"),
                        None => "no current room: /join ROOM".into(),
                    };
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
        if !self.render.is_json() {
            self.print(&format!(
                "-> [{}] {}",
                crate::sanitize::for_terminal(&to),
                crate::sanitize::for_terminal(&text)
            ));
        }
        let node = self.node.clone();
        let lines = self.lines.0.clone();
        let style = if self.render.is_json() {
            Style::Json
        } else {
            Style::Human
        };
        tokio::spawn(async move {
            if let Err(e) = node.send_direct(&to, &text).await {
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
