//! The OS processes of one bot in the Redis tests: this test binary
//! started again in child mode (one `#[test]` that acts only when its
//! environment variable is set), one child per spec, each child's output
//! read on its own thread for the marker lines the parent waits on. The
//! children are killed when the set is dropped, so a failing test leaves
//! none behind.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use reconnect_client::Clock;

/// A bot's child processes and the marker lines they print.
pub struct Children {
    children: Vec<Child>,
    /// `(child, line from the first marker word on)`.
    lines: Receiver<(usize, String)>,
}

impl Children {
    /// Starts one child per spec: the test binary running only the test
    /// `test` with `env` set to the spec, output captured; lines holding
    /// one of `markers` are passed on (from the marker word on, as
    /// libtest's own `test … ` prefix has no line end).
    pub fn spawn(
        test: &str,
        env: &str,
        specs: &[String],
        markers: &'static [&'static str],
    ) -> Self {
        let exe = std::env::current_exe().expect("the test binary's path");
        let (tx, lines) = channel();
        let children = specs
            .iter()
            .enumerate()
            .map(|(p, spec)| {
                let mut child = Command::new(&exe)
                    .args(["--exact", test, "--nocapture", "--test-threads", "1"])
                    .env(env, spec)
                    .env("RUST_LOG", "warn")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("the test binary starts again as a child");
                let stdout = child.stdout.take().expect("a piped stdout");
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                        for word in markers {
                            if let Some(at) = line.find(word) {
                                let _ = tx.send((p, line[at..].to_owned()));
                            }
                        }
                    }
                });
                child
            })
            .collect();
        Self { children, lines }
    }

    /// Waits up to `within` for one line starting with `marker` from each
    /// child (other marker lines are skipped); the lines sorted by child,
    /// or how many came when time ran out (the children are then killed).
    pub fn wait_each(
        &mut self,
        marker: &str,
        within: Duration,
    ) -> Result<Vec<(usize, String)>, usize> {
        let started = Clock::start();
        let mut got = Vec::new();
        while got.len() < self.children.len() {
            let left = within.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok((p, line)) if line.starts_with(marker) => got.push((p, line)),
                Ok(_) => {}
                Err(_) => {
                    self.kill();
                    return Err(got.len());
                }
            }
        }
        got.sort();
        Ok(got)
    }

    /// Ends every child's standard input (each closes when it ends).
    pub fn close_inputs(&mut self) {
        for child in &mut self.children {
            drop(child.stdin.take());
        }
    }

    /// Waits for every child to exit, each within 30 s and successfully.
    pub fn wait_exit(&mut self) {
        for child in &mut self.children {
            let waiting = Clock::start();
            loop {
                if let Some(status) = child.try_wait().expect("the child's status") {
                    assert!(status.success(), "a child process failed: {status}");
                    break;
                }
                if waiting.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    panic!("a child process did not close within 30 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills every child still running.
    pub fn kill(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.kill();
    }
}
