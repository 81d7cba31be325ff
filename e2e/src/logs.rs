//! Log lines captured from handlers run in the test process (their JSON subscriber writes here).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A writer that keeps every byte; clones share the buffer.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Every line, each parsed as JSON (a line that is not JSON fails the test).
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().expect("log buffer").clone();
        let text = String::from_utf8(bytes).expect("logs are UTF-8");
        text.lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
            })
            .collect()
    }
}
