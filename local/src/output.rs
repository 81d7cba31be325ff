//! What the runner prints: its own lines (`orders-local: ...`), and the lines of each child
//! process prefixed with its name (`[command] ...`). Write errors (a closed terminal or pipe)
//! are ignored rather than fatal.

use std::io::Write;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// A line from the runner itself, on stdout.
pub fn say(message: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "orders-local: {}", message.as_ref());
    let _ = out.flush();
}

/// A warning from the runner, on stderr.
pub fn warn(message: impl AsRef<str>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "orders-local: warning: {}", message.as_ref());
}

/// One line, prefixed, on stdout or stderr.
pub fn prefixed(prefix: &str, line: &str, to_stderr: bool) {
    if to_stderr {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[{prefix}] {line}");
    } else {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[{prefix}] {line}");
        let _ = out.flush();
    }
}

/// Copies a child's output to ours line by line, prefixed with `prefix`.
pub fn forward<R>(reader: R, prefix: String, to_stderr: bool) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    prefixed(&prefix, text.trim_end_matches(['\n', '\r']), to_stderr);
                }
            }
        }
    })
}
