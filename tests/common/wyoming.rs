//! Wyoming services built on the official `wyoming` package (`tests/wyoming/services.py`),
//! each in the test venv's Python on a loopback TCP port, killed and started again on
//! the same port by the tests.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Service {
    child: Option<Child>,
    args: Vec<String>,
    pub port: u16,
    log: PathBuf,
}

/// The test venv's Python, if `scripts/deps.sh test` made it with the `wyoming`
/// package; outside CI a missing one skips the test.
pub fn python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.test-venv/bin/python");
    let found = Command::new(&python)
        .args(["-c", "import wyoming"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "the wyoming package is not installed: scripts/deps.sh test installs it"
        );
        eprintln!("SKIPPED: the wyoming package is not installed (run scripts/deps.sh test)");
    }
    found.then_some(python)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("wyoming/services.py")
}

impl Service {
    /// `services.py KIND --uri tcp://127.0.0.1:PORT ARGS`, once it accepts
    /// connections. `None` (the test skips) without the venv.
    pub fn start(dir: &Path, kind: &str, args: &[&str]) -> Option<Service> {
        python()?;
        let port = super::free_udp_port();
        let mut all = vec![
            kind.to_owned(),
            "--uri".into(),
            format!("tcp://127.0.0.1:{port}"),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let mut service = Service {
            child: None,
            args: all,
            port,
            log: dir.join(format!("wyoming-{kind}-{port}.log")),
        };
        service.restart();
        Some(service)
    }

    pub fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// SIGKILL, then reap: the service dies mid-whatever it was doing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with other arguments after the address.
    pub fn restart_with(&mut self, args: &[&str]) {
        self.args.truncate(3);
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self.restart();
    }

    /// Starts it (again) on the same port and waits until it listens.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(python().expect("checked at start"))
            .arg(script())
            .args(&self.args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the Wyoming service starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the Wyoming service did not listen on {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}
