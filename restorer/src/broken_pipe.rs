//! A closed stdout (`restore list | head -1`, `packer init | head -0`) is a reader that has
//! heard enough, not an error. Rust ignores SIGPIPE, so a write to a closed pipe fails with
//! EPIPE and `println!` panics (exit 101, a backtrace hint on stderr). Both binaries install
//! this hook first: a panic that is exactly a failed print to a broken pipe ends the process
//! quietly with exit 0, as ripgrep does; every other panic is reported as before.

/// Installs the hook (once, at the start of `main`).
pub fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_broken_pipe_print(payload) {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// The message `print!`/`println!` panic with on EPIPE. (Not stderr: an error that cannot be
/// shown must still not look like success.)
fn is_broken_pipe_print(message: &str) -> bool {
    message.starts_with("failed printing to stdout")
        && (message.contains("Broken pipe") || message.contains("os error 32"))
}

/// Whether an error chain ends in a broken pipe (an explicit `writeln!(stdout)?` that failed):
/// the binaries treat it as a clean exit too.
pub fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
            return true;
        }
        cur = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_broken_pipe_prints_are_quiet() {
        assert!(is_broken_pipe_print("failed printing to stdout: Broken pipe (os error 32)"));
        assert!(!is_broken_pipe_print("failed printing to stderr: Broken pipe (os error 32)"));
        assert!(!is_broken_pipe_print("failed printing to stdout: No space left on device (os error 28)"));
        assert!(!is_broken_pipe_print("index out of bounds"));
    }
}
