//! One SSH session channel: waits for a shell or a command, then runs the
//! full-screen client (with a PTY) or line mode (without) on the channel,
//! and ends it with an exit status when the front end ends.

use std::io::Write;

use futures::{SinkExt as _, StreamExt as _};
use russh::{Channel, ChannelMsg, server::Handle, server::Msg};
use tokio::{io::AsyncWriteExt as _, sync::mpsc};

use crate::{node::Node, ui};

/// Bytes kept in the pipe from the channel to line mode's reader.
const PIPE: usize = 64 * 1024;
/// Writes (frames, lines) waiting for the client to take them; a client
/// that stops reading for this many ends its session.
const OUT_CAP: usize = 1024;
/// Key events waiting for the client.
const KEYS_CAP: usize = 256;

/// Who and where a session is.
#[derive(Debug, Clone)]
pub(super) struct Context {
    pub(super) node: Node,
    /// The logged-in user's name.
    pub(super) user: String,
    /// The room it starts in.
    pub(super) room: String,
}

/// What the client asked for.
enum Start {
    Shell,
    Exec(Vec<u8>),
}

/// Serves one channel until its front end ends or the client goes.
pub(super) async fn serve(mut channel: Channel<Msg>, handle: Handle, cx: Context) {
    let id = channel.id();
    let mut pty: Option<(u16, u16)> = None;
    let start = loop {
        match channel.wait().await {
            Some(ChannelMsg::RequestPty {
                col_width,
                row_height,
                ..
            }) => pty = Some((clamp(col_width), clamp(row_height))),
            Some(ChannelMsg::RequestShell { .. }) => break Start::Shell,
            Some(ChannelMsg::Exec { command, .. }) => break Start::Exec(command),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return,
            Some(_) => {}
        }
    };
    // Output: one task writes what the front end produces to the channel.
    let (out, mut outgoing) = mpsc::channel::<Vec<u8>>(OUT_CAP);
    let writer = {
        let handle = handle.clone();
        tokio::spawn(async move {
            while let Some(bytes) = outgoing.recv().await {
                if handle.data(id, bytes).await.is_err() {
                    break;
                }
            }
        })
    };
    match (start, pty) {
        (Start::Shell, Some(size)) => full_screen(&mut channel, out, size, &cx).await,
        (Start::Shell, None) => lines(&mut channel, out, None, &cx).await,
        (Start::Exec(command), _) => lines(&mut channel, out, Some(command), &cx).await,
    }
    let _ = writer.await;
    // Both front ends end well: at the end of input, /quit or Ctrl+C.
    let _ = handle.exit_status_request(id, 0).await;
    let _ = handle.eof(id).await;
    let _ = handle.close(id).await;
}

fn clamp(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX).max(1)
}

/// Line mode: `command` as the only line, or the channel's data as lines.
async fn lines(
    channel: &mut Channel<Msg>,
    out: mpsc::Sender<Vec<u8>>,
    command: Option<Vec<u8>>,
    cx: &Context,
) {
    let (mut feed, read) = tokio::io::duplex(PIPE);
    let events = cx.node.subscribe();
    let front = ui::serve_lines(
        cx.node.clone(),
        events,
        tokio::io::BufReader::new(read),
        out,
        &cx.room,
        &cx.user,
    );
    tokio::pin!(front);
    if let Some(command) = command {
        let write = async {
            let _ = feed.write_all(&command).await;
            let _ = feed.write_all(b"\n").await;
        };
        if beside(front.as_mut(), write).await.is_some() {
            drop(feed);
            (&mut front).await;
        }
    } else {
        let mut feed = Some(feed);
        loop {
            tokio::select! {
                _ = &mut front => break,
                msg = channel.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        if let Some(f) = feed.as_mut() {
                            // The pipe is full until line mode reads:
                            // it runs on while this waits.
                            match beside(front.as_mut(), f.write_all(&data)).await {
                                None => break,
                                Some(Err(_)) => feed = None,
                                Some(Ok(())) => {}
                            }
                        }
                    }
                    // End of input: line mode ends once it read the rest.
                    Some(ChannelMsg::Eof) => feed = None,
                    Some(ChannelMsg::Close) | None => return,
                    Some(_) => {}
                },
            }
        }
    }
}

/// The full-screen client on the channel's PTY.
async fn full_screen(
    channel: &mut Channel<Msg>,
    out: mpsc::Sender<Vec<u8>>,
    (cols, rows): (u16, u16),
    cx: &Context,
) {
    let (mut keys, key_stream) = futures::channel::mpsc::channel(KEYS_CAP);
    let mut screen = Out {
        buf: Vec::new(),
        out: out.clone(),
    };
    let _ = crossterm::execute!(
        screen,
        crossterm::terminal::EnterAlternateScreen,
        crossterm::event::EnableBracketedPaste,
    );
    let backend = ratatui::backend::CrosstermBackend::new(Out {
        buf: Vec::new(),
        out: out.clone(),
    });
    let front = ui::full_screen(
        cx.node.clone(),
        cx.node.subscribe(),
        key_stream.map(Ok),
        backend,
        (cols, rows),
        &cx.room,
        Some(&cx.user),
    );
    tokio::pin!(front);
    let mut parser = Keys::default();
    // A key is never dropped: while the client is behind, the channel is
    // not read, and SSH's flow control holds the sender back.
    'session: loop {
        tokio::select! {
            _ = &mut front => break,
            msg = channel.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    for event in parser.feed(&data) {
                        match beside(front.as_mut(), keys.send(event)).await {
                            None => break 'session,
                            // The client is ending: its end is next.
                            Some(Err(_)) => break,
                            Some(Ok(())) => {}
                        }
                    }
                }
                Some(ChannelMsg::WindowChange { col_width, row_height, .. }) => {
                    let resize = crossterm::event::Event::Resize(clamp(col_width), clamp(row_height));
                    if beside(front.as_mut(), keys.send(resize)).await.is_none() {
                        break;
                    }
                }
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                    keys.close_channel();
                    (&mut front).await;
                    break;
                }
                Some(_) => {}
            },
        }
    }
    let _ = crossterm::execute!(
        screen,
        crossterm::event::DisableBracketedPaste,
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show,
    );
}

/// Awaits `step` while `front` runs on; None if `front` ended first (it
/// must then not be polled again).
async fn beside<T>(
    front: std::pin::Pin<&mut impl std::future::Future>,
    step: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        t = step => Some(t),
        _ = front => None,
    }
}

/// What the front end writes, sent to the channel at each flush.
struct Out {
    buf: Vec<u8>,
    out: mpsc::Sender<Vec<u8>>,
}

impl Write for Out {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // A client that stopped reading ends its session: a frame is
        // never half sent.
        self.out
            .try_send(std::mem::take(&mut self.buf))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::BrokenPipe, e.to_string()))
    }
}

/// Terminal input bytes into key events (an escape sequence may arrive
/// split across packets).
#[derive(Default)]
struct Keys {
    pending: Vec<u8>,
}

impl Keys {
    fn feed(&mut self, bytes: &[u8]) -> Vec<crossterm::event::Event> {
        let mut events = Vec::new();
        for (i, &b) in bytes.iter().enumerate() {
            self.pending.push(b);
            // An Escape with more bytes behind it starts a sequence (or is
            // Alt with the next key): wait for them.
            if self.pending == [0x1b] && i + 1 < bytes.len() {
                continue;
            }
            match terminput::Event::parse_from(&self.pending) {
                Ok(Some(event)) => {
                    self.pending.clear();
                    if let Ok(event) = terminput_crossterm::to_crossterm(event) {
                        events.push(event);
                    }
                }
                Ok(None) => {}
                Err(_) => self.pending.clear(),
            }
        }
        // A lone Escape is a key, not the start of a sequence, once the
        // packet that carried it is over.
        if self.pending == [0x1b] {
            self.pending.clear();
            events.push(crossterm::event::Event::Key(
                crossterm::event::KeyCode::Esc.into(),
            ));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};

    use super::Keys;

    fn codes(events: &[Event]) -> Vec<(KeyCode, KeyModifiers)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Key(KeyEvent {
                    code, modifiers, ..
                }) => Some((*code, *modifiers)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn keys_from_bytes_even_split_across_packets() {
        let mut keys = Keys::default();
        let mut got = keys.feed(b"hi\r\x7f\x1b[");
        got.extend(keys.feed(b"5~\x1b2\x0e"));
        assert_eq!(
            codes(&got),
            [
                (KeyCode::Char('h'), KeyModifiers::NONE),
                (KeyCode::Char('i'), KeyModifiers::NONE),
                (KeyCode::Enter, KeyModifiers::NONE),
                (KeyCode::Backspace, KeyModifiers::NONE),
                (KeyCode::PageUp, KeyModifiers::NONE),
                (KeyCode::Char('2'), KeyModifiers::ALT),
                (KeyCode::Char('n'), KeyModifiers::CONTROL),
            ]
        );
        assert_eq!(
            codes(&keys.feed(b"\x1b")),
            [(KeyCode::Esc, KeyModifiers::NONE)]
        );
    }
}
