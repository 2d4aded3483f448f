//! A local `restate-server` for integration tests, `procreg demo`/`bench` and CI.
//!
//! [`ensure_restate_server`] finds the binary (or installs the pinned npm package into
//! `<workspace>/.tools/restate`), and [`LocalRestate`] runs it on free loopback ports
//! with its own base dir, so parallel runs never collide.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::ports::Ports;
use crate::run_dir::RunDir;
use crate::signing::{SigningKeys, SERVER_KEY_ENV};

/// Errors from finding, installing or running a local restate-server.
#[derive(Debug, thiserror::Error)]
pub enum LocalServerError {
    /// `RESTATE_SERVER_BIN` is set but names no existing file.
    #[error("RESTATE_SERVER_BIN is set to {0}, which is not an existing file")]
    BinNotFound(PathBuf),
    /// The binary is not installed and `npm` cannot be run to install it.
    #[error("restate-server or restatectl is missing and npm is not available: install Node.js/npm or set RESTATE_SERVER_BIN / RESTATECTL_BIN")]
    NpmNotFound,
    /// `npm install` ran but failed.
    #[error("npm install of @restatedev/restate-server failed ({status}):\n{stderr}")]
    NpmFailed {
        /// npm's exit status.
        status: String,
        /// What npm printed on stderr.
        stderr: String,
    },
    /// `npm install` succeeded but the expected binary is not there.
    #[error("npm install finished but {0} does not exist")]
    InstallIncomplete(PathBuf),
    /// No npm platform package is known for this OS/architecture.
    #[error(
        "no restate-server npm package for {}/{}; set RESTATE_SERVER_BIN",
        std::env::consts::OS,
        std::env::consts::ARCH
    )]
    UnsupportedPlatform,
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP request to the server could not be made.
    #[error("HTTP request to {url} failed: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The admin API rejected a deployment registration.
    #[error("registering deployment {uri} failed with {status}: {body}")]
    Registration {
        /// The endpoint URI.
        uri: String,
        /// The admin API's status.
        status: u16,
        /// The admin API's answer.
        body: String,
    },
    /// The server exited or did not become healthy in time.
    #[error("restate-server did not become healthy: {reason}\n--- last lines of {} ---\n{tail}", log.display())]
    Unhealthy {
        /// Why it is considered unhealthy.
        reason: String,
        /// The server's log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// `restart` was called while the server is still running.
    #[error("restate-server is still running; stop or kill it before restarting")]
    StillRunning,
}

/// The pinned server version.
pub const RESTATE_SERVER_VERSION: &str = "1.7.12";

const CONFIG: &str = include_str!("../../restate.toml");
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// An HTTP client for the server's own loopback ports (no proxy).
fn loopback_client() -> Result<reqwest::Client, LocalServerError> {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|source| LocalServerError::Http {
            url: String::new(),
            source,
        })
}

pub(crate) fn io_err(
    context: impl Into<String>,
) -> impl FnOnce(std::io::Error) -> LocalServerError {
    let context = context.into();
    move |source| LocalServerError::Io { context, source }
}

/// Path of restate-server: RESTATE_SERVER_BIN, else the project-local install, installing it with npm when missing.
pub async fn ensure_restate_server() -> Result<PathBuf, LocalServerError> {
    ensure_npm_tool("restate-server", "RESTATE_SERVER_BIN").await
}

/// Path of restatectl (the cluster tool, same version as the server):
/// RESTATECTL_BIN, else the project-local install, installing it with npm
/// when missing. The cluster harness reads partition leaders with it.
pub async fn ensure_restatectl() -> Result<PathBuf, LocalServerError> {
    ensure_npm_tool("restatectl", "RESTATECTL_BIN").await
}

/// `.tools/{tool}/node_modules/@restatedev/{tool}-{os}-{arch}/bin/{tool}`,
/// from the pinned npm package `@restatedev/{tool}` (one install dir per
/// tool, so installing one never prunes the other).
async fn ensure_npm_tool(tool: &str, override_var: &str) -> Result<PathBuf, LocalServerError> {
    if let Some(bin) = std::env::var_os(override_var).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(LocalServerError::BinNotFound(bin))
        };
    }
    let tools = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(".tools");
    // restate-server keeps its historical install dir.
    let install_dir = tools.join(if tool == "restate-server" {
        "restate"
    } else {
        tool
    });
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "darwin",
        _ => return Err(LocalServerError::UnsupportedPlatform),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        _ => return Err(LocalServerError::UnsupportedPlatform),
    };
    let bin = install_dir
        .join("node_modules/@restatedev")
        .join(format!("{tool}-{os}-{arch}"))
        .join("bin")
        .join(tool);
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&install_dir)
        .map_err(io_err(format!("creating {}", install_dir.display())))?;
    let _lock = InstallLock::acquire(tools.join(format!("{tool}.install.lock"))).await?;
    if bin.is_file() {
        return Ok(bin); // another process installed it while we waited
    }
    let output = Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(&install_dir)
        .args(["--no-save", "--no-audit", "--no-fund"])
        .arg(format!("@restatedev/{tool}@{RESTATE_SERVER_VERSION}"))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LocalServerError::NpmNotFound,
            _ => io_err("running npm")(e),
        })?;
    if !output.status.success() {
        return Err(LocalServerError::NpmFailed {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(LocalServerError::InstallIncomplete(bin))
    }
}

/// An exclusive lock (`flock`, through `fs4`) serializing npm installs
/// across processes, held until drop. The kernel releases it when its
/// holder dies, so a crashed install never blocks the next one and a slow
/// one is never taken over.
struct InstallLock(#[allow(dead_code)] File);

impl InstallLock {
    async fn acquire(path: PathBuf) -> Result<Self, LocalServerError> {
        let context = format!("locking {}", path.display());
        let locked = tokio::task::spawn_blocking(move || {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            fs4::FileExt::lock(&file)?;
            Ok(file)
        })
        .await
        .map_err(|join| std::io::Error::other(join.to_string()))
        .and_then(|locked| locked);
        locked.map(Self).map_err(io_err(context))
    }
}

/// Where a server keeps its config, log and data.
enum BaseDir {
    /// A temp dir of its own, removed with the server.
    Fresh(RunDir),
    /// The caller's, kept.
    Kept(PathBuf),
}

impl BaseDir {
    fn fresh() -> Result<Self, LocalServerError> {
        RunDir::new()
            .map(Self::Fresh)
            .map_err(io_err("creating a temp base dir"))
    }
}

/// A restate-server child process on free loopback ports with its own base dir.
#[derive(Debug)]
pub struct LocalRestate {
    bin: PathBuf,
    base_dir: PathBuf,
    /// The temp dir `base_dir` is, when this server made it (removed on drop).
    _run_dir: Option<RunDir>,
    /// The ports below, held for this server's life (`None` for a cluster
    /// node: the cluster holds them).
    ports: Option<Ports>,
    fabric_port: u16,
    admin_port: u16,
    ingress_port: u16,
    /// The request identity private key the server signs with, if any.
    identity_pem: Option<PathBuf>,
    /// The config file's text.
    config: String,
    child: Option<Child>,
    http: reqwest::Client,
}

impl LocalRestate {
    /// Starts a server in a fresh temp base dir (removed on drop).
    pub async fn start() -> Result<Self, LocalServerError> {
        Self::start_with(None).await
    }

    /// Like [`start`](Self::start), with `config` as the whole config file
    /// instead of the shipped `restate.toml` (ports still come from the
    /// environment), e.g. to measure Restate's defaults against it.
    pub async fn start_configured(config: &str) -> Result<Self, LocalServerError> {
        Self::launch(BaseDir::fresh()?, None, Some(config)).await
    }

    /// Like [`start`](Self::start), the server signing every request to
    /// deployments with `keys` (request identity).
    pub async fn start_signing(keys: &SigningKeys) -> Result<Self, LocalServerError> {
        Self::start_with(Some(keys)).await
    }

    async fn start_with(keys: Option<&SigningKeys>) -> Result<Self, LocalServerError> {
        Self::launch(BaseDir::fresh()?, keys, None).await
    }

    /// Starts a server on an existing base dir that the caller keeps (not removed on drop).
    pub async fn start_in(base_dir: PathBuf) -> Result<Self, LocalServerError> {
        Self::launch(BaseDir::Kept(base_dir), None, None).await
    }

    async fn launch(
        dir: BaseDir,
        keys: Option<&SigningKeys>,
        config: Option<&str>,
    ) -> Result<Self, LocalServerError> {
        let bin = ensure_restate_server().await?;
        let (base_dir, run_dir) = match dir {
            BaseDir::Fresh(run_dir) => (run_dir.path().to_path_buf(), Some(run_dir)),
            BaseDir::Kept(base_dir) => (base_dir, None),
        };
        let owns_dir = run_dir.is_some();
        std::fs::create_dir_all(&base_dir)
            .map_err(io_err(format!("creating {}", base_dir.display())))?;
        let identity_pem = match keys {
            Some(keys) => {
                let path = base_dir.join("request-identity.pem");
                keys.write_private_pem(&path)
                    .map_err(io_err(format!("writing {}", path.display())))?;
                Some(path)
            }
            None => None,
        };
        let ports = reserve_ports()?;
        let (fabric_port, admin_port, ingress_port) = three(&ports);
        let http = loopback_client()?;
        // Constructed before spawning so a failed start still cleans up on drop.
        let mut server = Self {
            bin,
            base_dir,
            _run_dir: run_dir,
            ports: Some(ports),
            fabric_port,
            admin_port,
            ingress_port,
            identity_pem,
            config: config.unwrap_or(CONFIG).to_owned(),
            child: None,
            http,
        };
        let mut attempt = 1;
        loop {
            match server.spawn().await {
                Err(_) if owns_dir && attempt < PORT_ATTEMPTS && server.lost_a_port() => {
                    // A fresh server never got to serve: start over on
                    // new ports and an empty data dir.
                    attempt += 1;
                    let data = server.base_dir.join("data");
                    let _ = std::fs::remove_dir_all(&data);
                    let ports = reserve_ports()?;
                    (server.fabric_port, server.admin_port, server.ingress_port) = three(&ports);
                    server.ports = Some(ports);
                }
                result => return result.map(|()| server),
            }
        }
    }

    /// A node of a cluster (see `local_cluster`): `config` is the whole
    /// config file; ports are `(fabric, admin, ingress)`. Not started.
    pub(crate) async fn node(
        base_dir: PathBuf,
        ports: (u16, u16, u16),
        config: String,
    ) -> Result<Self, LocalServerError> {
        let bin = ensure_restate_server().await?;
        std::fs::create_dir_all(&base_dir)
            .map_err(io_err(format!("creating {}", base_dir.display())))?;
        let http = loopback_client()?;
        Ok(Self {
            bin,
            base_dir,
            _run_dir: None,
            ports: None,
            fabric_port: ports.0,
            admin_port: ports.1,
            ingress_port: ports.2,
            identity_pem: None,
            config,
            child: None,
            http,
        })
    }

    /// Starts a node made by [`node`](Self::node) without waiting for it.
    pub(crate) fn launch_node(&mut self) -> Result<(), LocalServerError> {
        self.start_child()
    }

    /// Waits until a launched node answers on admin and ingress.
    pub(crate) async fn wait_node(&mut self) -> Result<(), LocalServerError> {
        self.wait_healthy().await
    }

    /// The node-to-node address, e.g. `http://127.0.0.1:5122/`.
    pub fn fabric_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.fabric_port)
    }

    /// The running server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether the child process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The ingress endpoint, e.g. `http://127.0.0.1:8080` (no trailing slash).
    pub fn ingress_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ingress_port)
    }

    /// The admin API endpoint, e.g. `http://127.0.0.1:9070` (no trailing slash).
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The server's base dir: config, `server.log` and the `data` dir live here.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    fn log_path(&self) -> PathBuf {
        self.base_dir.join("server.log")
    }

    /// Registers (or re-registers with force) the service endpoint at `endpoint_url`.
    pub async fn register_deployment(&self, endpoint_url: &str) -> Result<(), LocalServerError> {
        let url = format!("{}/deployments", self.admin_url());
        let response = self
            .http
            .post(&url)
            .json(&serde_json::json!({ "uri": endpoint_url, "force": true }))
            .send()
            .await
            .map_err(|source| LocalServerError::Http { url, source })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(LocalServerError::Registration {
            uri: endpoint_url.to_owned(),
            status: status.as_u16(),
            body: response.text().await.unwrap_or_default(),
        })
    }

    /// Graceful stop: SIGTERM, wait up to 20 s for a clean shutdown, then
    /// SIGKILL. The base dir is kept for [`Self::restart`].
    pub async fn stop(&mut self) -> Result<(), LocalServerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // No pid: it was already reaped. A pid that no longer fits is no
        // process of ours: SIGKILL through the handle instead.
        if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // ESRCH: it exited on its own just now; the wait below reaps it.
            let sent = kill(Pid::from_raw(pid), Signal::SIGTERM);
            if sent.is_ok() || sent == Err(nix::errno::Errno::ESRCH) {
                if let Ok(waited) = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
                    waited.map_err(io_err("waiting for restate-server"))?;
                    return Ok(());
                }
            }
        }
        hard_kill(&mut child).await
    }

    /// Hard stop: SIGKILL and wait, simulating a crash (for crash-recovery tests).
    pub async fn kill(&mut self) -> Result<(), LocalServerError> {
        match self.child.take() {
            Some(mut child) => hard_kill(&mut child).await,
            None => Ok(()),
        }
    }

    /// Starts the server again on the same base dir and the same ports, so state and URLs
    /// survive; waits for health. Errors with [`LocalServerError::StillRunning`] if it is running.
    pub async fn restart(&mut self) -> Result<(), LocalServerError> {
        if let Some(child) = &mut self.child {
            match child.try_wait() {
                Ok(Some(_)) => self.child = None,
                _ => return Err(LocalServerError::StillRunning),
            }
        }
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<(), LocalServerError> {
        self.start_child()?;
        self.wait_healthy().await
    }

    /// Starts the child process without waiting for it to be healthy.
    fn start_child(&mut self) -> Result<(), LocalServerError> {
        let config = self.base_dir.join("restate.toml");
        std::fs::write(&config, &self.config)
            .map_err(io_err(format!("writing {}", config.display())))?;
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(format!("opening {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(io_err(format!("opening {}", log_path.display())))?;
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let url = |port: u16| format!("http://127.0.0.1:{port}/");
        let mut command = Command::new(&self.bin);
        die_with_parent(&mut command);
        let child = command
            .arg("--config-file")
            .arg(&config)
            .arg("--base-dir")
            .arg(self.base_dir.join("data"))
            .args(["--no-logo", "--listen-mode", "tcp"])
            .env("RESTATE_BIND_ADDRESS", addr(self.fabric_port))
            .env("RESTATE_ADVERTISED_ADDRESS", url(self.fabric_port))
            .env("RESTATE_ADMIN__BIND_ADDRESS", addr(self.admin_port))
            .env(
                "RESTATE_ADMIN__ADVERTISED_ADMIN_ENDPOINT",
                url(self.admin_port),
            )
            .env("RESTATE_INGRESS__BIND_ADDRESS", addr(self.ingress_port))
            .env(
                "RESTATE_INGRESS__ADVERTISED_INGRESS_ENDPOINT",
                url(self.ingress_port),
            )
            // Plain text, so server.log and the tails in errors stay readable.
            .env("RESTATE_LOG_DISABLE_ANSI_CODES", "true")
            .envs(self.identity_pem.iter().map(|pem| (SERVER_KEY_ENV, pem)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(io_err(format!("starting {}", self.bin.display())))?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_healthy(&mut self) -> Result<(), LocalServerError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let checks = [
            format!("{}/health", self.admin_url()),
            format!("{}/restate/health", self.ingress_url()),
        ];
        loop {
            let exited = match &mut self.child {
                Some(child) => child.try_wait().ok().flatten(),
                None => return Err(self.unhealthy("the server is not running".into())),
            };
            if let Some(status) = exited {
                self.child = None;
                return Err(self.unhealthy(format!("the server exited early ({status})")));
            }
            let mut healthy = true;
            for url in &checks {
                let ok = self
                    .http
                    .get(url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                healthy &= ok.is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
            }
            if healthy {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.unhealthy(format!("not healthy after {START_TIMEOUT:?}")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether a failed start lost one of its reserved ports to a program
    /// outside this harness: the server is gone and the port is taken.
    fn lost_a_port(&mut self) -> bool {
        !self.is_running() && self.ports.as_ref().is_some_and(Ports::any_taken)
    }

    fn unhealthy(&self, reason: String) -> LocalServerError {
        let log = self.log_path();
        let text = std::fs::read(&log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        LocalServerError::Unhealthy { reason, log, tail }
    }
}

/// How many times a fresh server is started on new ports when a program
/// outside this harness took one of its reserved ports first.
const PORT_ATTEMPTS: usize = 3;

/// Three reserved loopback ports (fabric, admin, ingress; see `ports`).
fn reserve_ports() -> Result<Ports, LocalServerError> {
    Ports::reserve(3).map_err(io_err("reserving loopback ports"))
}

fn three(ports: &Ports) -> (u16, u16, u16) {
    match ports.ports() {
        &[fabric, admin, ingress] => (fabric, admin, ingress),
        other => unreachable!("three ports reserved, got {other:?}"),
    }
}

async fn hard_kill(child: &mut Child) -> Result<(), LocalServerError> {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return Ok(());
    }
    child.kill().await.map_err(io_err("killing restate-server"))
}

impl Drop for LocalRestate {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
            // Give the killed process a moment to exit so the dir removal doesn't race it.
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // `run_dir`, dropped after this, removes the dir of a server that made it.
    }
}

/// Has the child die (SIGKILL) with the thread that started it, so a test
/// binary that exits without dropping its server or endpoint (a shared
/// static) leaves nothing running. Linux only; elsewhere the child is
/// killed on drop alone.
pub fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl` is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn assert_ingress_healthy(server: &LocalRestate) {
        let url = format!("{}/restate/health", server.ingress_url());
        let client = loopback_client().expect("client");
        let status = client.get(&url).send().await.expect("health").status();
        assert_eq!(status, reqwest::StatusCode::OK, "{url}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn start_stop_restart() {
        let bin = ensure_restate_server()
            .await
            .expect("restate-server binary");
        assert!(bin.is_file());
        let mut server = LocalRestate::start().await.expect("start");
        let base_dir = server.base_dir().to_path_buf();
        assert_ingress_healthy(&server).await;
        server.stop().await.expect("stop");
        server.restart().await.expect("restart");
        assert_eq!(server.base_dir(), base_dir);
        assert_ingress_healthy(&server).await;
        drop(server);
        assert!(!base_dir.exists(), "temp base dir removed on drop");
    }
}
