//! A PostgreSQL server of the test's own: `initdb` in a temporary directory, `pg_ctl` on a free
//! loopback port, so a test can stop it (`-m immediate`, as a crash would) and start it again
//! without disturbing the tests that share the machine's server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use uuid::Uuid;

/// How a test's server lets its superuser in over TCP.
pub enum Auth {
    /// No password (the default of a developer's machine).
    Trust,
    /// `scram-sha-256` with this password, as Debian's own cluster after a reboot.
    Password(&'static str),
}

/// A stopped-and-removed-on-drop PostgreSQL cluster owned by the `postgres` OS user when the
/// test runs as root (`initdb` refuses root).
pub struct PostgresServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PostgresServer {
    /// The newest server binaries under `/usr/lib/postgresql` (Debian's layout), else the
    /// directory of an `initdb` on `PATH`, if any.
    pub fn binaries() -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        dirs.sort();
        dirs.pop().or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        })
    }

    /// A new cluster, started. `None` when the machine has no server binaries (`./stack.sh test`
    /// installs them).
    ///
    /// Panics when `initdb` or the start fails: it is for tests.
    pub fn start(auth: Auth) -> Option<Self> {
        let bin = Self::binaries()?;
        let dir = std::env::temp_dir().join(format!("larder-test-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let server = Self {
            bin,
            dir,
            port: free_port(),
        };
        let mut initdb = server.as_postgres("initdb");
        initdb.arg("-D").arg(server.data()).args([
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]);
        match auth {
            Auth::Trust => {
                initdb.arg("--auth=trust");
            }
            Auth::Password(password) => {
                let file = server.dir.join("pw");
                std::fs::write(&file, password).expect("a password file");
                initdb
                    .arg("--auth=scram-sha-256")
                    .arg(format!("--pwfile={}", file.display()));
            }
        }
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&server.dir)
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown to postgres");
        }
        let output = initdb.stdin(Stdio::null()).output().expect("initdb runs");
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        server.start_again();
        Some(server)
    }

    /// The superuser's URL on `database`.
    pub fn url(&self, userinfo: &str, database: &str) -> String {
        format!(
            "postgres://{userinfo}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// The superuser's URL on the `postgres` database, without a password: what
    /// [`TestDatabase::new_on`](super::TestDatabase::new_on) takes on an [`Auth::Trust`] server.
    pub fn admin_url(&self) -> String {
        self.url("postgres", "postgres")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `pg_ctl stop -m immediate`: every backend is killed at once, nothing is checkpointed,
    /// and the next start runs crash recovery, as after a crash of the server.
    pub fn stop_immediately(&self) {
        let output = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        assert!(
            output.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the server (again), on its port and data, and waits until it accepts logins.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let output = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        assert!(
            output.status.success(),
            "pg_ctl start: {} (log: {})",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A server binary, run as the `postgres` OS user when we are root.
    fn as_postgres(&self, program: &str) -> Command {
        as_postgres(&self.bin.join(program))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command.current_dir("/");
        command
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}
