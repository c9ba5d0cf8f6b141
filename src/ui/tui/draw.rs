//! Painting the client's [`State`] into a ratatui frame: the rooms pane,
//! the messages, the members pane, the status line and the input line.
//! Pure: the same state draws the same screen (tests snapshot it).

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Position, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Paragraph},
};
use unicode_width::UnicodeWidthChar as _;

use super::state::{Entry, Mark, State, Target, width_of};
use crate::sanitize::for_terminal as clean;

/// Below this width the members pane is not shown.
const MEMBERS_FROM: u16 = 72;
/// Below this width the rooms pane is not shown.
const ROOMS_FROM: u16 = 44;
const ROOMS_WIDTH: u16 = 20;
const MEMBERS_WIDTH: u16 = 28;

/// Nick colours, picked by peer id; none is the error red.
const NICK_COLOURS: [Color; 6] = [
    Color::Cyan,
    Color::Green,
    Color::Magenta,
    Color::Blue,
    Color::LightYellow,
    Color::LightCyan,
];

/// Where each part goes on a screen of `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Areas {
    pub(crate) rooms: Option<Rect>,
    pub(crate) messages: Rect,
    pub(crate) members: Option<Rect>,
    pub(crate) status: Rect,
    pub(crate) input: Rect,
}

/// The layout for a screen of `(width, height)`.
pub(crate) fn layout((width, height): (u16, u16)) -> Areas {
    let screen = Rect::new(0, 0, width, height);
    let [top, status, input] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(screen);
    let rooms_w = if width >= ROOMS_FROM { ROOMS_WIDTH } else { 0 };
    let members_w = if width >= MEMBERS_FROM {
        MEMBERS_WIDTH
    } else {
        0
    };
    let [rooms, messages, members] = Layout::horizontal([
        Constraint::Length(rooms_w),
        Constraint::Min(1),
        Constraint::Length(members_w),
    ])
    .areas(top);
    Areas {
        rooms: (rooms_w > 0).then_some(rooms),
        messages,
        members: (members_w > 0).then_some(members),
        status,
        input,
    }
}

/// Paints the whole screen.
pub(crate) fn draw(frame: &mut Frame<'_>, state: &State) {
    let areas = layout(state.size);
    if let Some(area) = areas.rooms {
        rooms(frame, area, state);
    }
    messages(frame, areas.messages, state);
    if let Some(area) = areas.members {
        members(frame, area, state);
    }
    status(frame, areas.status, state);
    input(frame, areas.input, state);
}

/// The colour of `peer`'s nick.
pub(crate) fn nick_colour(peer: &str) -> Color {
    let hash = peer
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    NICK_COLOURS[hash as usize % NICK_COLOURS.len()]
}

/// How a conversation is named in the rooms pane and the prompt.
pub(crate) fn title(state: &State, target: &Target) -> String {
    match target {
        Target::Room(room) => format!("#{}", clean(room)),
        Target::Direct(peer) if peer.is_empty() => "(node)".into(),
        Target::Direct(peer) => match state.buffer(target) {
            Some(b) if !b.label.is_empty() => format!("@{}", b.label),
            _ => format!("@…{}", clean(crate::ui::names::suffix(peer))),
        },
    }
}

fn rooms(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let block = Block::default()
        .borders(Borders::RIGHT)
        .border_style(Style::new().fg(Color::DarkGray));
    let mut lines = vec![Line::styled(
        "rooms",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    for (i, target) in state.targets().iter().enumerate() {
        let mut spans = vec![
            Span::styled(
                if i < 9 {
                    format!("{} ", i + 1)
                } else {
                    "  ".into()
                },
                Style::new().fg(Color::DarkGray),
            ),
            Span::raw(title(state, target)),
        ];
        let (unread, mentions) = state.counts(target);
        if let Target::Room(room) = target {
            if state.encrypted(room) {
                spans.push(Span::raw(" 🔒"));
            }
            if let Some(n @ 1..) = state.pending.get(room).copied() {
                spans.push(Span::styled(
                    format!(" ⋯{n}"),
                    Style::new().fg(Color::Yellow),
                ));
            }
        }
        if unread > 0 {
            spans.push(Span::styled(
                format!(" {unread}"),
                Style::new().add_modifier(Modifier::BOLD),
            ));
        }
        if mentions > 0 {
            spans.push(Span::styled(
                format!(" @{mentions}"),
                Style::new()
                    .fg(Color::LightRed)
                    .add_modifier(Modifier::BOLD),
            ));
        }
        let mut line = Line::from(spans);
        if state.focus() == Some(target) {
            line = line.style(Style::new().add_modifier(Modifier::REVERSED));
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// An entry as styled pieces, `time` its clock text.
fn pieces(entry: &Entry, time: &str) -> Vec<(String, Style)> {
    let dim = Style::new().fg(Color::DarkGray);
    match entry {
        Entry::Notice { text, error } => {
            let style = if *error {
                Style::new().fg(Color::LightRed)
            } else {
                dim
            };
            vec![(format!("{time} -- {text}"), style)]
        }
        Entry::Said {
            from,
            who,
            text,
            action,
            mine,
            mention,
            mark,
            recovered,
            ..
        } => {
            let nick = if *mine {
                Style::new().add_modifier(Modifier::BOLD)
            } else {
                Style::new().fg(nick_colour(from))
            };
            let body = if *mention {
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            let mut out = vec![(format!("{time} "), dim)];
            if *action {
                out.push(("* ".into(), body));
                out.push((who.clone(), nick));
                out.push((format!(" {text}"), body));
            } else {
                out.push(("<".into(), dim));
                out.push((who.clone(), nick));
                out.push(("> ".into(), dim));
                out.push((text.clone(), body));
            }
            match mark {
                Mark::None => {}
                Mark::Pending => out.push((" ⋯ pending".into(), Style::new().fg(Color::Yellow))),
                Mark::Saved => out.push((" ✓".into(), Style::new().fg(Color::Green))),
                Mark::Sending => out.push((" …".into(), dim)),
                Mark::Delivered => {
                    out.push((" ✓ delivered".into(), Style::new().fg(Color::Green)));
                }
                Mark::Failed(why) => {
                    out.push((format!(" ✗ {why}"), Style::new().fg(Color::LightRed)))
                }
            }
            if *recovered {
                out.push((" (recovered)".into(), dim));
            }
            out
        }
    }
}

/// Continuation rows start under the text, past the time column.
const HANG: usize = 6;

/// An entry cut into rows of at most `width` columns (a wide character
/// that does not fit starts the next row); rows after the first are
/// indented past the time when there is room.
fn wrap(pieces: Vec<(String, Style)>, width: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let hang = if width > 4 * HANG { HANG } else { 0 };
    let mut rows: Vec<Line<'static>> = Vec::new();
    let mut row: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for (text, style) in pieces {
        let mut piece = String::new();
        for c in text.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width && used > 0 {
                if !piece.is_empty() {
                    row.push(Span::styled(std::mem::take(&mut piece), style));
                }
                rows.push(Line::from(std::mem::take(&mut row)));
                row.push(Span::raw(" ".repeat(hang)));
                used = hang;
            }
            piece.push(c);
            used += w;
        }
        if !piece.is_empty() {
            row.push(Span::styled(piece, style));
        }
    }
    if !row.is_empty() || rows.is_empty() {
        rows.push(Line::from(row));
    }
    rows
}

/// The rows `entry` takes at `width`, as drawn.
pub(crate) fn rows_of(entry: &Entry, width: usize) -> usize {
    wrap(pieces(entry, "--:--"), width).len()
}

fn messages(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let Some(buffer) = state.focus().and_then(|t| state.buffer(t)) else {
        let hint = Paragraph::new("no room: /join ROOM");
        frame.render_widget(hint, area);
        return;
    };
    let (width, height) = (usize::from(area.width), usize::from(area.height));
    // From the bottom up, skipping what is scrolled past.
    let mut skip = buffer.scroll;
    let mut shown: Vec<Line<'static>> = Vec::new();
    for entry in buffer.entries.iter().rev() {
        if shown.len() >= height {
            break;
        }
        let time = match entry {
            Entry::Said { ts, .. } => (state.clock)(*ts),
            Entry::Notice { .. } => "     ".into(),
        };
        let rows = wrap(pieces(entry, &time), width);
        for row in rows.into_iter().rev() {
            if skip > 0 {
                skip -= 1;
            } else if shown.len() < height {
                shown.push(row);
            }
        }
    }
    if shown.len() < height && buffer.scroll == 0 && !buffer.complete {
        // More is in the store: say so at the top.
        shown.push(Line::styled(
            "(PgUp for older messages)",
            Style::new().fg(Color::DarkGray),
        ));
    }
    // Bottom-aligned, as a chat reads.
    shown.reverse();
    let pad = height.saturating_sub(shown.len());
    let mut lines: Vec<Line<'static>> = vec![Line::raw(""); pad];
    lines.extend(shown);
    frame.render_widget(Paragraph::new(lines), area);
}

fn members(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let block = Block::default()
        .borders(Borders::LEFT)
        .border_style(Style::new().fg(Color::DarkGray));
    let mut lines = vec![Line::styled(
        format!("members {}", state.members.len()),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    for m in &state.members {
        let (dot, dot_style) = if m.connected {
            ("●", Style::new().fg(Color::Green))
        } else {
            ("○", Style::new().fg(Color::DarkGray))
        };
        let nick = if m.me {
            Style::new().add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(nick_colour(&m.peer))
        };
        let mut spans = vec![
            Span::styled(format!("{dot} "), dot_style),
            Span::styled(m.who.clone(), nick),
        ];
        let detail = if m.me {
            " (you)".to_owned()
        } else {
            let short = crate::ui::names::suffix(&m.peer);
            let ping = m.rtt_ms.map(|ms| format!(" {ms:.0}ms")).unwrap_or_default();
            let relayed = if m.connection == "relayed" {
                " relayed"
            } else {
                ""
            };
            format!(" …{}{ping}{relayed}", clean(short))
        };
        spans.push(Span::styled(detail, Style::new().fg(Color::DarkGray)));
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn status(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let s = &state.status;
    let id = if s.peer_id.len() > 12 {
        format!(
            "{}…{}",
            &s.peer_id[..8],
            crate::ui::names::suffix(&s.peer_id)
        )
    } else {
        s.peer_id.clone()
    };
    let mut text = format!(
        " {} · {id} · {} · {} peer{}",
        clean(&s.nick),
        if s.reachability.is_empty() {
            "unknown"
        } else {
            &s.reachability
        },
        s.peers,
        if s.peers == 1 { "" } else { "s" }
    );
    match &s.http {
        Some(http) => text.push_str(&format!(" · HTTP {http}")),
        None => text.push_str(" · HTTP off"),
    }
    if let Some(n) = s.ssh {
        let plural = if n == 1 { "" } else { "s" };
        text.push_str(&format!(" · SSH {n} session{plural}"));
    }
    // First, so a narrow screen still shows it.
    if let Some(buffer) = state.focus().and_then(|t| state.buffer(t))
        && buffer.scroll > 0
    {
        text = format!(" scrolled back, {} new ·{text}", buffer.below);
    }
    let style = Style::new().fg(Color::White).bg(Color::Blue);
    frame.render_widget(Paragraph::new(text).style(style), area);
}

fn input(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let (prompt, text, cursor) = match &state.secret {
        // Not echoed: neither the characters nor how many.
        Some(question) => (question.clone(), String::new(), 0),
        None => {
            let prompt = match state.focus() {
                Some(t) => format!("{}> ", title(state, t)),
                None => "> ".into(),
            };
            let width = usize::from(area.width)
                .saturating_sub(width_of(&prompt))
                .max(1);
            let scroll = state.input.visual_scroll(width.saturating_sub(1));
            let shown: String = skip_columns(state.input.value(), scroll);
            (
                prompt,
                shown,
                state.input.visual_cursor().saturating_sub(scroll),
            )
        }
    };
    let prompt_w = width_of(&prompt);
    let line = Line::from(vec![
        Span::styled(prompt, Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(text),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x
        + u16::try_from(prompt_w + cursor)
            .unwrap_or(u16::MAX)
            .min(area.width.saturating_sub(1));
    frame.set_cursor_position(Position::new(x, area.y));
}

/// `s` without its first `columns` display columns.
fn skip_columns(s: &str, columns: usize) -> String {
    let mut used = 0;
    s.chars()
        .skip_while(|c| {
            let skip = used < columns;
            used += c.width().unwrap_or(0);
            skip
        })
        .collect()
}
