//! Helpers shared by the command-line tests: running `dlrm-he` and a `dlrm-he serve` process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

pub fn dlrm_he() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dlrm-he"))
}

/// A `dlrm-he serve` process on a free loopback port, killed when dropped.
pub struct ServeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its stderr lines, when started with [`ServeProcess::start_logging`].
    pub log: Option<Receiver<String>>,
}

impl ServeProcess {
    /// Starts `dlrm-he serve --model MODEL --key-store STORE` and waits until it listens. Its
    /// warnings go to the test's stderr (a line per call would fill the test output).
    pub fn start(model: &Path, store: &Path) -> Self {
        Self::launch(model, store, None)
    }

    /// Like [`ServeProcess::start`], with `--log-format FORMAT` at level `info`, its log lines
    /// arriving on [`ServeProcess::log`].
    pub fn start_logging(model: &Path, store: &Path, format: &str) -> Self {
        Self::launch(model, store, Some(format))
    }

    fn launch(model: &Path, store: &Path, log_format: Option<&str>) -> Self {
        let mut command = dlrm_he();
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--model"])
            .arg(model)
            .arg("--key-store")
            .arg(store)
            .stdout(Stdio::piped());
        match log_format {
            None => command.env("RUST_LOG", "warn").stderr(Stdio::inherit()),
            Some(format) => command
                .args(["--log-format", format])
                .env("RUST_LOG", "info")
                .stderr(Stdio::piped()),
        };
        let mut child = command.spawn().unwrap();
        let log = child.stderr.take().map(|stderr| {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = sender.send(line);
                }
            });
            receiver
        });
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("serve exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix("listening on http://") {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining its output so the process never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        ServeProcess { child, addr, log }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next log line of a process started with [`ServeProcess::start_logging`] (a call's
    /// line is written before its answer is sent).
    pub fn next_log_line(&self) -> String {
        let log = self.log.as_ref().expect("started with start_logging");
        log.recv_timeout(Duration::from_secs(30))
            .expect("a log line within 30 s")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
