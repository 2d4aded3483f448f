//! An endpoint running as its own OS process on a fixed loopback port, so
//! a test can SIGKILL it (an endpoint crash) or keep it down for a while
//! (an outage) and start it again where the server expects it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::ports::Ports;

/// `{program} serve --port {port}` as a child process.
#[derive(Debug)]
pub struct ChildEndpoint {
    program: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Holds `port` for this endpoint across its restarts.
    _reserved: Ports,
}

impl ChildEndpoint {
    /// Starts `program` (a `procreg` binary) serving on a reserved port and
    /// waits until it listens.
    ///
    /// # Panics
    /// When no port can be reserved or the endpoint never listens: the
    /// test needing it cannot go on.
    pub async fn start(program: impl Into<PathBuf>) -> Self {
        let reserved = Ports::reserve(1).expect("a free port");
        let port = reserved.ports()[0];
        let mut endpoint = Self {
            program: program.into(),
            port,
            child: None,
            _reserved: reserved,
        };
        endpoint.restart().await;
        endpoint
    }

    /// The URL to register as the server's deployment.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// SIGKILLs the endpoint; it stays down until [`restart`](Self::restart).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL the endpoint");
        }
    }

    /// Starts the endpoint again on the same port and waits until it listens.
    pub async fn restart(&mut self) {
        self.kill().await;
        let child = Command::new(&self.program)
            .args(["serve", "--port", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the endpoint starts");
        self.child = Some(child);
        self.wait_listening().await;
    }

    /// SIGKILL, `down_for`, then the same endpoint again.
    pub async fn kill_and_restart(&mut self, down_for: Duration) {
        self.kill().await;
        tokio::time::sleep(down_for).await;
        self.restart().await;
    }

    async fn wait_listening(&self) {
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the endpoint did not listen on {}", self.port);
    }
}
