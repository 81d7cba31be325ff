//! A child process that is stopped (politely, then firmly) when dropped.

use std::process::Child;
use std::time::{Duration, Instant};

pub struct Guarded {
    pub child: Child,
    /// The signal that asks this program to stop at once (SIGQUIT for PostgreSQL).
    pub stop_signal: i32,
}

impl Guarded {
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(self.child.id() as i32, self.stop_signal);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}
