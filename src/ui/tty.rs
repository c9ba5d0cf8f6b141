//! The terminal under stdin: whether there is one, turning its echo off
//! while a passphrase is typed, and putting it back as it was on every way
//! out (a panic included).

use rustix::termios::{LocalModes, OptionalActions, Termios, isatty, tcgetattr, tcsetattr};

/// Whether stdin is a terminal.
pub(crate) fn stdin_is_terminal() -> bool {
    isatty(std::io::stdin())
}

/// Whether stdout is a terminal.
pub(crate) fn stdout_is_terminal() -> bool {
    isatty(std::io::stdout())
}

/// Turns echo of typed characters on or off. Errors are ignored: without a
/// terminal there is nothing to hide.
pub(crate) fn set_echo(on: bool) {
    let stdin = std::io::stdin();
    let Ok(mut modes) = tcgetattr(&stdin) else {
        return;
    };
    if on {
        modes.local_modes.insert(LocalModes::ECHO);
    } else {
        modes.local_modes.remove(LocalModes::ECHO);
    }
    let _ = tcsetattr(&stdin, OptionalActions::Now, &modes);
}

/// The terminal's settings now, if stdin is a terminal.
fn save() -> Option<Termios> {
    tcgetattr(std::io::stdin()).ok()
}

/// Puts back settings from [`save`]; errors are ignored, as for echo.
fn restore(saved: &Termios) {
    let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, saved);
}

/// Puts the terminal back as it was when dropped: at the end of a session,
/// and also when the session's future is dropped unfinished (a signal that
/// the caller's own `select!` saw first).
pub(crate) struct Guard(Termios);

impl Guard {
    /// Saves the terminal's settings now (if stdin is a terminal), and puts
    /// them back before a panic's message is printed too.
    pub(crate) fn new() -> Option<Guard> {
        let saved = save()?;
        restore_on_panic(saved.clone());
        Some(Guard(saved))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore(&self.0);
    }
}

/// Restores `saved` before a panic's message is printed, then panics as
/// before.
fn restore_on_panic(saved: Termios) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore(&saved);
        previous(info);
    }));
}
