//! The full-screen client. A client that redrew per message would fall
//! behind a busy room and typing in it would lag; the client coalesces
//! redraws to one per 16 ms frame and draws typing at once, and this checks
//! both hold.
//!
//! In process: node A runs the client on ratatui's test backend while B
//! floods the room, and a key is typed every 20 ms until the client shows
//! the last message; frame time and key-to-frame beside the same client,
//! same keys, with no burst. Key-to-frame twice: as the client measures it
//! (from taking the key in) and from the key's sending (with any wait
//! behind node events). In a real terminal (tmux): from a key sent to the
//! screen showing it, for the real binary beside `cat` (the terminal's
//! own echo), and for the same client reached with `ssh -t` (the node's
//! SSH server, OpenSSH's client) beside it run in the terminal itself.

use std::{
    convert::Infallible,
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use futures::{StreamExt as _, channel::mpsc};
use p2p_chat::{
    Config, Node,
    config::{DEFAULT_HEARTBEAT_MS, DEFAULT_ROOM},
    ui::{Exit, Frames},
};
use ratatui::{
    backend::{Backend, ClearType, TestBackend, WindowSize},
    buffer::Cell,
    layout::{Position, Size},
};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::{
    Plan,
    cost::our_binary,
    load::{TEXT_BYTES, text},
    pairs::start_node,
    report::{Figure, percentile},
};

/// The in-process client's screen.
const SIZE: (u16, u16) = (200, 50);
/// The typing rhythm, under the burst and idle alike.
const KEY_EVERY: Duration = Duration::from_millis(20);
/// The input line's prompt in the room.
const PROMPT: &str = "#lobby>";
/// Bound on setup steps: a mesh, a first frame, the client ending.
const SETUP: Duration = Duration::from_secs(20);
/// How long A may take to hold the whole burst once B is done.
const CATCH_UP: Duration = Duration::from_secs(60);
/// After the last message or key, before Ctrl+C: the client's last turns.
const SETTLE: Duration = Duration::from_millis(200);
/// How long one key may take to show in tmux.
const KEY_LIMIT: Duration = Duration::from_secs(5);
const IDLE: &str = "same client, same keys, no burst";

/// The `i`-th key typed: a letter scrambled from `i`, so that a scrolled
/// input line's tail tells how many keys it shows.
fn char_at(i: usize) -> char {
    let x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    char::from(b'a' + ((x >> 40) % 26) as u8)
}

fn key(code: KeyCode, modifiers: KeyModifiers) -> TermEvent {
    TermEvent::Key(KeyEvent::new(code, modifiers))
}

/// Each flushed frame's time and input line (the screen's last row).
type Rows = Arc<Mutex<Vec<(Instant, String)>>>;

/// Rows above the status line where the newest message shows.
const TAIL_ROWS: u16 = 6;

/// The test backend, noting each frame's input line as it is flushed (when
/// a key first showed, measured from when it was sent), and when the
/// bottom of the messages first showed `marker` (the burst's last).
struct Watched {
    inner: TestBackend,
    rows: Rows,
    marker: String,
    seen: Arc<Mutex<Option<Instant>>>,
}

/// Row `y` of the screen, without trailing blanks.
fn row(buffer: &ratatui::buffer::Buffer, y: u16) -> String {
    let row: String = (0..buffer.area.width)
        .map(|x| buffer[(x, y)].symbol())
        .collect();
    row.trim_end().to_owned()
}

impl Backend for Watched {
    type Error = Infallible;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Infallible>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.inner.draw(content)
    }

    fn hide_cursor(&mut self) -> Result<(), Infallible> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> Result<(), Infallible> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> Result<Position, Infallible> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Infallible> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> Result<(), Infallible> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Infallible> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, Infallible> {
        self.inner.size()
    }

    fn window_size(&mut self) -> Result<WindowSize, Infallible> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        self.inner.flush()?;
        let at = Instant::now();
        let buffer = self.inner.buffer();
        let bottom = buffer.area.height.saturating_sub(1);
        if let Ok(mut rows) = self.rows.lock() {
            rows.push((at, row(buffer, bottom)));
        }
        if let Ok(mut seen) = self.seen.lock()
            && seen.is_none()
        {
            let status = bottom.saturating_sub(1);
            let tail = status.saturating_sub(TAIL_ROWS)..status;
            if tail
                .map(|y| row(buffer, y))
                .any(|r| r.contains(&self.marker))
            {
                *seen = Some(at);
            }
        }
        Ok(())
    }
}

/// When the input line first showed each of `keys` typed keys.
fn shown_at(rows: &[(Instant, String)], keys: usize) -> Vec<Option<Instant>> {
    let typed: String = (0..keys).map(char_at).collect();
    let mut shown = vec![None; keys];
    let mut count = 0;
    for (at, row) in rows {
        let Some(line) = row.strip_prefix(PROMPT) else {
            continue;
        };
        let line = line.trim();
        // The fewest keys, no fewer than before, whose text ends as the
        // line does (it scrolls once full).
        let Some(c) = (count.max(line.len())..=keys).find(|&c| typed[..c].ends_with(line)) else {
            continue;
        };
        for s in &mut shown[count..c] {
            *s = Some(*at);
        }
        count = c;
    }
    shown
}

/// A and B, both in the lobby, each in the other's mesh.
struct Pair {
    a: Node,
    b: Node,
    tasks: Vec<JoinHandle<()>>,
}

async fn mesh_peers(node: &Node) -> anyhow::Result<usize> {
    Ok(node
        .rooms()
        .await?
        .iter()
        .find(|r| r.room == DEFAULT_ROOM)
        .map_or(0, |r| r.mesh_peers))
}

impl Pair {
    async fn start() -> anyhow::Result<Pair> {
        let mut cfg = Config::for_tests();
        cfg.heartbeat_ms = DEFAULT_HEARTBEAT_MS;
        cfg.nick = Some("a".into());
        let (a, addr, ta) = start_node(&cfg).await?;
        cfg.nick = Some("b".into());
        cfg.dial = vec![addr.parse()?];
        let (b, _, tb) = start_node(&cfg).await?;
        let pair = Pair {
            a,
            b,
            tasks: vec![ta, tb],
        };
        let deadline = Instant::now() + SETUP;
        loop {
            if mesh_peers(&pair.a).await? > 0 && mesh_peers(&pair.b).await? > 0 {
                return Ok(pair);
            }
            if Instant::now() > deadline {
                pair.stop().await;
                bail!("B was not in A's mesh within {SETUP:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// The full-screen client running on a node, fed keys by the bench.
struct Client {
    keys: mpsc::UnboundedSender<TermEvent>,
    rows: Rows,
    /// When the burst's last message first showed.
    seen: Arc<Mutex<Option<Instant>>>,
    task: JoinHandle<(Exit, Frames)>,
}

impl Client {
    /// Starts it and waits for its first frame; it watches for the
    /// message `last`.
    async fn start(node: &Node, last: usize) -> anyhow::Result<Client> {
        let (keys, rx) = mpsc::unbounded();
        let rows = Rows::default();
        let seen = Arc::default();
        let backend = Watched {
            inner: TestBackend::new(SIZE.0, SIZE.1),
            rows: rows.clone(),
            marker: format!("#seq{last:08}|"),
            seen: Arc::clone(&seen),
        };
        let task = tokio::spawn(p2p_chat::ui::full_screen(
            node.clone(),
            node.subscribe(),
            rx.map(Ok::<_, std::io::Error>),
            backend,
            SIZE,
            DEFAULT_ROOM,
            None,
        ));
        let client = Client {
            keys,
            rows,
            seen,
            task,
        };
        let deadline = Instant::now() + SETUP;
        while client.rows.lock().map(|r| r.is_empty()).unwrap_or(true) {
            ensure!(
                Instant::now() < deadline,
                "the client drew nothing in {SETUP:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(client)
    }

    /// Types a key every [`KEY_EVERY`] until `stop` is set or `max` are
    /// typed; when each was sent. On a thread of its own, as a terminal's
    /// keys come whatever the runtime is busy with.
    fn typist(&self, max: usize, stop: Arc<AtomicBool>) -> JoinHandle<Vec<Instant>> {
        let keys = self.keys.clone();
        let thread = std::thread::spawn(move || {
            let mut sent = Vec::new();
            let mut next = Instant::now();
            while sent.len() < max && !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                let c = KeyCode::Char(char_at(sent.len()));
                if keys.unbounded_send(key(c, KeyModifiers::NONE)).is_err() {
                    break;
                }
                sent.push(at);
                // Late ticks are not made up for.
                next = (next + KEY_EVERY).max(Instant::now());
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            sent
        });
        tokio::task::spawn_blocking(move || thread.join().unwrap_or_default())
    }

    /// Ctrl+C, then what it measured.
    async fn stop(self, sent: Vec<Instant>, secs: f64) -> anyhow::Result<Run> {
        tokio::time::sleep(SETTLE).await;
        let ctrl_c = key(KeyCode::Char('c'), KeyModifiers::CONTROL);
        self.keys.unbounded_send(ctrl_c)?;
        let (exit, frames) = tokio::time::timeout(SETUP, self.task)
            .await
            .context("the client did not end on Ctrl+C")??;
        ensure!(exit == Exit::Signal, "the client ended by {exit:?}");
        let rows = std::mem::take(
            &mut *self
                .rows
                .lock()
                .map_err(|_| anyhow::anyhow!("rows lock poisoned"))?,
        );
        let shown = shown_at(&rows, sent.len());
        let ms = |us: &[f64]| us.iter().map(|u| u / 1e3).collect::<Vec<_>>();
        let from_sent: Vec<f64> = sent
            .iter()
            .zip(&shown)
            .filter_map(|(s, at)| Some(at.as_ref()?.saturating_duration_since(*s)))
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        Ok(Run {
            frame: p50_p99(&ms(&frames.draw_us)),
            key: p50_p99(&ms(&frames.key_to_frame_us)),
            sent: p50_p99(&from_sent),
            keys: sent.len(),
            unshown: sent.len() - from_sent.len(),
            secs,
            published: 0.0,
            frames,
        })
    }
}

fn p50_p99(samples: &[f64]) -> [f64; 2] {
    [percentile(samples, 50.0), percentile(samples, 99.0)]
}

/// One run of the client: percentiles in ms (p50, p99), and its counts.
struct Run {
    frame: [f64; 2],
    /// From the client taking a key in (its own measure).
    key: [f64; 2],
    /// From the bench sending a key.
    sent: [f64; 2],
    keys: usize,
    unshown: usize,
    /// Until the client showed the burst's last message (typing time,
    /// idle).
    secs: f64,
    /// Until B had published the burst.
    published: f64,
    frames: Frames,
}

/// B publishes until `n` went out, as fast as `publish` answers; how many
/// were refused on the way (a full send queue: kept, not sent live).
async fn flood(b: &Node, n: usize) -> anyhow::Result<usize> {
    let (mut sent, mut refused) = (0, 0);
    while sent < n {
        match b.publish(DEFAULT_ROOM, &text(sent)).await {
            Ok(s) if s.pending => bail!("message {} was queued: A left", s.id),
            Ok(_) => sent += 1,
            Err(p2p_chat::node::Error::Publish { .. }) => {
                refused += 1;
                ensure!(refused <= n, "over {n} publishes refused");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(refused)
}

/// Until A holds `n` messages of the room, then until its client shows
/// the last; when it did.
async fn caught_up(a: &Node, client: &Client, n: usize) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let rooms = a.rooms().await?;
        let held = rooms
            .iter()
            .find(|r| r.room == DEFAULT_ROOM)
            .map_or(0, |r| r.messages);
        let seen = *client
            .seen
            .lock()
            .map_err(|_| anyhow::anyhow!("lock poisoned"))?;
        if let Some(at) = seen.filter(|_| held >= n as u64) {
            return Ok(at);
        }
        ensure!(
            Instant::now() < deadline,
            "{CATCH_UP:?} after the burst A held {held} of {n} messages, its client showed the last: {}",
            seen.is_some()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The client on A while B publishes `n` messages, typing throughout;
/// with the publishes refused.
async fn burst(pair: &Pair, n: usize) -> anyhow::Result<(Run, usize)> {
    let client = Client::start(&pair.a, n - 1).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let typing = client.typist(usize::MAX, stop.clone());
    let t = Instant::now();
    let flooded = async {
        let refused = flood(&pair.b, n).await?;
        let published = t.elapsed().as_secs_f64();
        let shown = caught_up(&pair.a, &client, n).await?;
        anyhow::Ok((refused, published, shown))
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    let sent = typing.await?;
    let (refused, published, shown) = flooded?;
    let secs = shown.saturating_duration_since(t).as_secs_f64();
    let mut run = client.stop(sent, secs).await?;
    run.published = published;
    Ok((run, refused))
}

/// The client on A with nothing arriving, typing `keys` keys.
async fn idle(pair: &Pair, n: usize, keys: usize) -> anyhow::Result<Run> {
    let client = Client::start(&pair.a, n - 1).await?;
    let t = Instant::now();
    let sent = client
        .typist(keys, Arc::new(AtomicBool::new(false)))
        .await?;
    let secs = t.elapsed().as_secs_f64();
    client.stop(sent, secs).await
}

/// A tmux server of its own (its socket in a temporary dir), killed when
/// dropped.
struct Tmux {
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(width: u16, command: &str) -> anyhow::Result<Tmux> {
        let dir = tempfile::Builder::new().prefix("bench-tmux").tempdir()?;
        let tmux = Tmux {
            socket: dir.path().join("socket"),
            _dir: dir,
        };
        let w = width.to_string();
        let args = ["-f", "/dev/null", "new-session", "-d", "-x", &w, "-y", "40"];
        tmux.run(&[&args[..], &[command]].concat())?;
        Ok(tmux)
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running tmux (scripts/install-deps.sh installs it)")?;
        ensure!(
            out.status.success(),
            "tmux {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Polls the screen until its last non-empty line satisfies `ok`.
    fn wait(&self, limit: Duration, ok: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        let t = Instant::now();
        loop {
            let screen = self.run(&["capture-pane", "-p"])?;
            let last = screen.lines().rev().find(|l| !l.trim().is_empty());
            if ok(last.unwrap_or("").trim_end()) {
                return Ok(());
            }
            ensure!(
                t.elapsed() < limit,
                "not on screen within {limit:?}; last line: {:?}",
                last.unwrap_or("")
            );
        }
    }

    /// Types `keys` characters one at a time: ms from sending each until
    /// the last line ends with everything typed so far.
    fn type_keys(&self, keys: usize) -> anyhow::Result<Vec<f64>> {
        let mut typed = String::new();
        let mut ms = Vec::with_capacity(keys);
        for i in 0..keys {
            let c = char_at(i);
            typed.push(c);
            let t = Instant::now();
            self.run(&["send-keys", "-l", &c.to_string()])?;
            self.wait(KEY_LIMIT, |line| line.ends_with(&typed))
                .with_context(|| format!("key {} of {keys}", i + 1))?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok(ms)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Key-to-screen in tmux: ours, then `cat`. Wide enough that the typed
/// text neither scrolls in our input line nor wraps after `cat`.
fn in_tmux(bin: &Path, keys: usize, width: u16) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let quoted = format!("'{}'", bin.display().to_string().replace('\'', r"'\''"));
    let ours = Tmux::start(
        width,
        &format!(
            "{quoted} --ui tui --ephemeral --no-mdns --no-http --nick k \
             --listen /ip4/127.0.0.1/tcp/0 2>/dev/null"
        ),
    )?;
    ours.wait(SETUP, |line| line.starts_with(PROMPT))
        .context("our client's prompt")?;
    // Past its start-up redraws.
    std::thread::sleep(Duration::from_millis(500));
    let ours_ms = ours.type_keys(keys).context("typing into our client")?;
    drop(ours);
    let cat = Tmux::start(width, "cat")?;
    std::thread::sleep(Duration::from_millis(200));
    let cat_ms = cat.type_keys(keys).context("typing into cat")?;
    Ok((ours_ms, cat_ms))
}

/// Key-to-screen in tmux for the client served over SSH: a node with
/// `--ssh` and a key made for the run, reached with `ssh -t` on loopback.
fn over_ssh(bin: &Path, keys: usize, width: u16) -> anyhow::Result<Vec<f64>> {
    let dir = tempfile::Builder::new().prefix("bench-ssh").tempdir()?;
    let key = dir.path().join("key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bench@bench", "-f"])
        .arg(&key)
        .stdin(Stdio::null())
        .status()
        .context("running ssh-keygen (scripts/install-deps.sh installs openssh-client)")?;
    ensure!(made.success(), "ssh-keygen failed");
    let authorized = dir.path().join("authorized_keys");
    std::fs::copy(key.with_extension("pub"), &authorized)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let node = Command::new(bin)
        .args([
            "--headless",
            "--ephemeral",
            "--no-mdns",
            "--no-http",
            "--nick",
            "k",
        ])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--ssh", &format!("127.0.0.1:{port}")])
        .arg("--ssh-authorized-keys")
        .arg(&authorized)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the node")?;
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _node = Killed(node);
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(t.elapsed() < SETUP, "the node's SSH port never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let ssh = format!(
        "ssh -F /dev/null -t -p {port} -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
         -o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new localhost",
        quote(&key),
        quote(&dir.path().join("known_hosts"))
    );
    let tmux = Tmux::start(width, &ssh)?;
    tmux.wait(SETUP, |line| line.starts_with(PROMPT))
        .context("the prompt over SSH")?;
    std::thread::sleep(Duration::from_millis(500));
    tmux.type_keys(keys).context("typing over SSH")
}

/// Runs the scenario.
pub(crate) async fn run(plan: &Plan) -> anyhow::Result<Vec<Figure>> {
    let bin = our_binary()?;
    let tmux = Command::new("tmux").arg("-V").output();
    if !tmux.is_ok_and(|o| o.status.success()) {
        bail!("tmux is not on PATH: scripts/install-deps.sh installs it");
    }
    let n = plan.screen_msgs;
    ensure!(n > 0, "no messages in the burst");
    let (mut flooded, mut quiet, mut refused) = (Vec::new(), Vec::new(), 0);
    for _ in 0..plan.reps {
        let pair = Pair::start().await.context("starting A and B")?;
        let runs = async {
            let (b, r) = burst(&pair, n).await.context("under the burst")?;
            let i = idle(&pair, n, b.keys).await.context("idle")?;
            anyhow::Ok((b, i, r))
        }
        .await;
        pair.stop().await;
        let (b, i, r) = runs?;
        flooded.push(b);
        quiet.push(i);
        refused += r;
    }
    let keys = plan.screen_keys;
    let width = u16::try_from(keys + 20).unwrap_or(u16::MAX).max(120);
    let (mut ours, mut echo, mut remote) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.reps {
        let bin = bin.clone();
        let (o, e, s) = tokio::task::spawn_blocking(move || {
            let (o, e) = in_tmux(&bin, keys, width)?;
            let s = over_ssh(&bin, keys, width)?;
            anyhow::Ok((o, e, s))
        })
        .await??;
        ours.push(p50_p99(&o));
        echo.push(p50_p99(&e));
        remote.push(p50_p99(&s));
    }

    let col = |runs: &[Run], f: fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    let secs = |runs: &[Run], f: fn(&Run) -> f64| {
        runs.iter()
            .map(|r| (f(r) * 1e3).round() / 1e3)
            .collect::<Vec<f64>>()
    };
    let sum = |runs: &[Run], f: fn(&Run) -> u64| runs.iter().map(f).collect::<Vec<u64>>();
    let params = json!({
        "size": format!("{}x{}", SIZE.0, SIZE.1),
        "messages": n,
        "text_bytes": TEXT_BYTES,
        "key_every_ms": KEY_EVERY.as_millis(),
        "keys": sum(&flooded, |r| r.keys as u64),
        "published_s": secs(&flooded, |r| r.published),
        "shown_s": secs(&flooded, |r| r.secs),
        "frames": sum(&flooded, |r| r.frames.drawn),
        "idle_frames": sum(&quiet, |r| r.frames.drawn),
        "events": sum(&flooded, |r| r.frames.events),
        "reloads": sum(&flooded, |r| r.frames.reloads),
        "refused_publishes": refused,
        "keys_never_shown": sum(&flooded, |r| r.unshown as u64),
    });
    let mut out = Vec::new();
    let mut fig = |name: &str, unit: &'static str, f: fn(&Run) -> f64| {
        out.extend(
            Figure::new(name, params.clone(), unit, &col(&flooded, f))
                .map(|fig| fig.against(IDLE, &col(&quiet, f))),
        );
    };
    fig("screen.frame.p50", "ms", |r| r.frame[0]);
    fig("screen.frame.p99", "ms", |r| r.frame[1]);
    // From the client taking the key in, as it measures.
    fig("screen.key_to_frame.p50", "ms", |r| r.key[0]);
    fig("screen.key_to_frame.p99", "ms", |r| r.key[1]);
    // From the bench sending it: with any wait in the client's key stream.
    fig("screen.key_sent_to_frame.p50", "ms", |r| r.sent[0]);
    fig("screen.key_sent_to_frame.p99", "ms", |r| r.sent[1]);
    fig("screen.reloads", "count", |r| r.frames.reloads as f64);
    let per_1000: Vec<f64> = flooded
        .iter()
        .map(|r| r.frames.drawn as f64 * 1000.0 / n as f64)
        .collect();
    out.extend(
        Figure::new(
            "screen.frames_per_1000_messages",
            params,
            "frames",
            &per_1000,
        )
        .map(|f| f.against("a frame per message", &vec![1000.0; per_1000.len()])),
    );
    let tmux_params = json!({
        "keys": keys,
        "terminal": format!("tmux {width}x40"),
        "binary": if cfg!(debug_assertions) { "debug" } else { "release" },
        "until": "capture-pane shows the key (polled)",
    });
    for (i, p) in [(0, "p50"), (1, "p99")] {
        let o: Vec<f64> = ours.iter().map(|v| v[i]).collect();
        let e: Vec<f64> = echo.iter().map(|v| v[i]).collect();
        out.extend(
            Figure::new(
                &format!("screen.key_to_screen.tmux.{p}"),
                tmux_params.clone(),
                "ms",
                &o,
            )
            .map(|f| f.against("cat in tmux (the terminal's echo)", &e)),
        );
        let s: Vec<f64> = remote.iter().map(|v| v[i]).collect();
        out.extend(
            Figure::new(
                &format!("screen.key_to_screen.ssh.{p}"),
                tmux_params.clone(),
                "ms",
                &s,
            )
            .map(|f| f.against("the same client in the terminal itself", &o)),
        );
    }
    Ok(out)
}
