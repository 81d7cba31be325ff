//! Child processes the runner owns: each in its own process group (so a Ctrl-C in the terminal
//! reaches only the runner, which then stops them in order), and each told by the kernel to
//! stop should the runner die without cleaning up (`PR_SET_PDEATHSIG`).

use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};

/// Prepares `command` to run as a child of the runner. `death_signal` is what the child gets if
/// the runner dies first (SIGKILL for functions and moto; SIGINT, a fast clean shutdown, for
/// PostgreSQL).
pub fn own(command: &mut Command, death_signal: i32) -> &mut Command {
    command.process_group(0).kill_on_drop(true);
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                death_signal as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The runner may have died between fork and prctl.
            if libc::getppid() == 1 {
                return Err(std::io::Error::other("the runner has exited"));
            }
            Ok(())
        });
    }
    command
}

/// Sends `signal` to one process.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// A supervised child: a task waits for it, so its exit is seen at once, and stopping it is a
/// request to that task (which still owns the child, so the pid cannot have been reused).
pub struct Supervised {
    pub pid: u32,
    exited: watch::Receiver<Option<String>>,
    stop: std::sync::Mutex<Option<oneshot::Sender<(i32, Duration)>>>,
}

impl Supervised {
    pub fn new(mut child: Child) -> Self {
        let pid = child.id().unwrap_or_default();
        let (exit_tx, exited) = watch::channel(None);
        let (stop, mut stop_rx) = oneshot::channel::<(i32, Duration)>();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                request = &mut stop_rx => {
                    match request {
                        Ok((sig, grace)) => {
                            if let Some(pid) = child.id() {
                                signal(pid, sig);
                            }
                            match tokio::time::timeout(grace, child.wait()).await {
                                Ok(status) => status,
                                Err(_) => {
                                    let _ = child.start_kill();
                                    child.wait().await
                                }
                            }
                        }
                        // The handle was dropped: kill now.
                        Err(_) => {
                            let _ = child.start_kill();
                            child.wait().await
                        }
                    }
                }
            };
            let text = match status {
                Ok(s) => describe(s),
                Err(e) => format!("could not be waited for: {e}"),
            };
            let _ = exit_tx.send(Some(text));
        });
        Self {
            pid,
            exited,
            stop: std::sync::Mutex::new(Some(stop)),
        }
    }

    /// How it exited, once it has.
    pub fn exit_status(&self) -> Option<String> {
        self.exited.borrow().clone()
    }

    /// A receiver that changes when the process exits.
    pub fn exit_watch(&self) -> watch::Receiver<Option<String>> {
        self.exited.clone()
    }

    /// Waits until the process has exited and returns how.
    pub async fn wait(&self) -> String {
        let mut rx = self.exited.clone();
        loop {
            if let Some(status) = rx.borrow_and_update().clone() {
                return status;
            }
            if rx.changed().await.is_err() {
                return "exited".into();
            }
        }
    }

    /// Asks it to stop with `sig`, kills it after `grace`, and waits for it.
    pub async fn stop(&self, sig: i32, grace: Duration) -> String {
        let stop = self.stop.lock().expect("stop lock").take();
        if let Some(stop) = stop {
            let _ = stop.send((sig, grace));
        }
        self.wait().await
    }
}

/// `exit status 1`, `killed by signal 9`.
pub fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}
