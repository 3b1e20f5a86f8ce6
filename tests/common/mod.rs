//! Helpers shared by the command-line tests: running `dlrm-he` and a `dlrm-he serve` process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub(crate) mod uci;

pub(crate) fn dlrm_he() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dlrm-he"))
}

/// A `dlrm-he serve` process on a free loopback port, killed when dropped.
pub(crate) struct ServeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// `http` or `https` (with `--tls-cert`).
    scheme: &'static str,
}

impl ServeProcess {
    /// Starts `dlrm-he serve --model MODEL --key-store STORE` and waits until it listens. Its
    /// warnings go to the test's stderr (a line per call would fill the test output).
    pub(crate) fn start(model: &Path, store: &Path) -> Self {
        Self::start_with(model, store, |_| {})
    }

    /// Like [`ServeProcess::start`], with the command changed by `configure` first (more
    /// arguments, another `RUST_LOG`, stderr piped).
    pub(crate) fn start_with(
        model: &Path,
        store: &Path,
        configure: impl FnOnce(&mut Command),
    ) -> Self {
        let mut command = dlrm_he();
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--model"])
            .arg(model)
            .arg("--key-store")
            .arg(store)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        configure(&mut command);
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (scheme, addr) = loop {
            let line = lines
                .next()
                .expect("serve exited before listening")
                .unwrap();
            let Some(rest) = line.strip_prefix("listening on ") else {
                continue;
            };
            let (scheme, rest) = rest.split_once("://").unwrap();
            let scheme = if scheme == "https" { "https" } else { "http" };
            break (
                scheme,
                rest.split_whitespace().next().unwrap().parse().unwrap(),
            );
        };
        // Keep draining its output so the process never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        ServeProcess {
            child,
            addr,
            scheme,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
