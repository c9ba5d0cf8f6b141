//! Line editing in a terminal, with rustyline on a thread of its own (it
//! blocks on the keyboard): a prompt naming the current room, lines from
//! the network printed above what is being typed, arrows, Home/End, input
//! history with Ctrl+R, and Tab completion from the session's snapshot.
//! The session asks for one line at a time and says, with the next ask,
//! whether the previous line may be kept in history: the decision is the
//! session model's, the file is this thread's.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError, mpsc as std_mpsc},
};

use rustyline::{
    CompletionType, Context, ExternalPrinter, Helper,
    completion::Completer,
    error::ReadlineError,
    highlight::Highlighter,
    hint::Hinter,
    history::{FileHistory, History as _},
    validate::Validator,
};
use tokio::sync::mpsc;
use zeroize::Zeroize as _;

use super::{
    session::{Known, complete},
    tty,
};
use crate::config::Secret;

/// One ask is answered before the next is made.
const ONE_AT_A_TIME: usize = 1;
/// Lines kept in input history.
const HISTORY_CAP: usize = 1000;

/// What the session asks the editor for.
pub(crate) enum Ask {
    /// A line, after `remember` (the previous line) is added to history.
    Line {
        prompt: String,
        remember: Option<String>,
    },
    /// An answer typed with echo off, never kept anywhere.
    Secret(String),
}

/// What the user gave.
pub(crate) enum Answer {
    Line(String),
    /// The answer to [`Ask::Secret`]; empty if cancelled.
    Secret(Secret),
    /// Ctrl+D on an empty line, or the terminal went away.
    End,
    /// Ctrl+C at the prompt.
    Interrupted,
}

/// The editor thread's handle.
pub(crate) struct Editor {
    asks: std_mpsc::SyncSender<Ask>,
    answers: mpsc::Receiver<Answer>,
    printer: Mutex<Box<dyn ExternalPrinter + Send>>,
}

/// Rustyline's view of the session: completion only.
struct Completion(Arc<Mutex<Known>>);

impl Helper for Completion {}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl Hinter for Completion {
    type Hint = String;
}

impl Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(complete(&known, line, pos))
    }
}

impl Editor {
    /// Starts the editor thread. `history` is the input history file
    /// (mode 0600), or None to keep history in memory only.
    pub(crate) fn start(
        history: Option<PathBuf>,
        known: Arc<Mutex<Known>>,
    ) -> Result<Editor, ReadlineError> {
        let config = rustyline::Config::builder()
            .auto_add_history(false)
            .history_ignore_dups(true)?
            .history_ignore_space(true)
            .max_history_size(HISTORY_CAP)?
            .completion_type(CompletionType::List)
            .build();
        let mut rl: rustyline::Editor<Completion, FileHistory> =
            rustyline::Editor::with_config(config)?;
        rl.set_helper(Some(Completion(known)));
        if let Some(path) = &history
            && path.exists()
            && let Err(e) = rl.load_history(path)
        {
            tracing::warn!(error = %e, path = %path.display(), "input history not loaded");
        }
        let printer = Box::new(rl.create_external_printer()?);
        let (asks, asked) = std_mpsc::sync_channel(ONE_AT_A_TIME);
        let (answer, answers) = mpsc::channel(ONE_AT_A_TIME);
        std::thread::Builder::new()
            .name("line-editor".into())
            .spawn(move || serve(rl, history, asked, answer))
            .map_err(ReadlineError::Io)?;
        Ok(Editor {
            asks,
            answers,
            printer: Mutex::new(printer),
        })
    }

    /// Asks for the next line or secret.
    pub(crate) fn ask(&self, ask: Ask) {
        if self.asks.try_send(ask).is_err() {
            tracing::warn!("line editor busy or gone: ask dropped");
        }
    }

    /// The user's next answer; None once the thread has ended.
    pub(crate) async fn answer(&mut self) -> Option<Answer> {
        self.answers.recv().await
    }

    /// Prints `line` above the prompt, or plainly when no line is being
    /// read.
    pub(crate) fn print(&self, line: &str) {
        let mut printer = self.printer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = printer.print(format!("{line}\n")) {
            tracing::debug!(error = %e, "terminal output");
        }
    }
}

/// The editor thread: one answer per ask, until the session goes away.
fn serve(
    mut rl: rustyline::Editor<Completion, FileHistory>,
    history: Option<PathBuf>,
    asked: std_mpsc::Receiver<Ask>,
    answer: mpsc::Sender<Answer>,
) {
    while let Ok(ask) = asked.recv() {
        let got = match ask {
            Ask::Line { prompt, remember } => {
                if let Some(line) = remember {
                    remember_line(&mut rl, history.as_ref(), &line);
                }
                match rl.readline(&prompt) {
                    Ok(line) => Answer::Line(line),
                    Err(ReadlineError::Interrupted) => Answer::Interrupted,
                    Err(ReadlineError::Eof) => Answer::End,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the terminal");
                        Answer::End
                    }
                }
            }
            Ask::Secret(prompt) => read_secret(&prompt),
        };
        if answer.blocking_send(got).is_err() {
            break;
        }
    }
}

fn remember_line(
    rl: &mut rustyline::Editor<Completion, FileHistory>,
    history: Option<&PathBuf>,
    line: &str,
) {
    match rl.history_mut().add(line) {
        Ok(true) => {}
        _ => return,
    }
    if let Some(path) = history
        && let Err(e) = rl.append_history(path)
    {
        tracing::warn!(error = %e, path = %path.display(), "input history not saved");
    }
}

/// Reads one line with echo off, in the terminal's own line mode (Ctrl+C
/// there is a signal, which stops the program and restores the terminal).
fn read_secret(prompt: &str) -> Answer {
    use std::io::{BufRead as _, Write as _};
    let mut out = std::io::stdout();
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    tty::set_echo(false);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    tty::set_echo(true);
    let _ = writeln!(out);
    let answer = Secret::new(line.trim());
    line.zeroize();
    match read {
        Ok(0) | Err(_) => Answer::Secret(Secret::new("")),
        Ok(_) => Answer::Secret(answer),
    }
}
