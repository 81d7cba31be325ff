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
                    let text = text.trim_end_matches(['\n', '\r']);
                    prefixed(&prefix, text, to_stderr);
                    if let Some(lag) = canary_lag(text) {
                        say(format!("[canary] read model lag {lag:.0} ms (HeartbeatLag, from the relay's heartbeat through SNS, SQS and the updater)"));
                    }
                }
            }
        }
    })
}

/// The read-model lag a function's EMF line reports (`HeartbeatLag`), if it is one.
fn canary_lag(line: &str) -> Option<f64> {
    if !line.contains("\"HeartbeatLag\"") {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(line)
        .ok()?
        .get("HeartbeatLag")?
        .as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_line_comes_from_the_updaters_heartbeat_metric() {
        let emf = r#"{"_aws":{"CloudWatchMetrics":[]},"HeartbeatLag":42.5,"ProjectionLag":0.0}"#;
        assert_eq!(canary_lag(emf), Some(42.5));
        assert_eq!(canary_lag(r#"{"ProjectionLag":12.0}"#), None);
        assert_eq!(canary_lag("HeartbeatLag is not JSON"), None);
    }
}
