//! The terminal under stdin: whether there is one, and turning its echo off
//! while a passphrase is typed.

use rustix::termios::{LocalModes, OptionalActions, isatty, tcgetattr, tcsetattr};

/// Whether stdin is a terminal.
pub(crate) fn stdin_is_terminal() -> bool {
    isatty(std::io::stdin())
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
