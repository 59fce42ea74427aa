//! `stack.sh` reuses a running service only when it works the way Larder needs it:
//! `./stack.sh check` (the decision `run` and `test` take, without installing or starting
//! anything) against a PostgreSQL with password authentication, a nats-server without JetStream
//! and a port that does not speak SMTP, each started here on free loopback ports and stopped at
//! the end. Every run is bounded by `timeout`: a prompt or a hang fails the test.
//!
//! The PostgreSQL and NATS cases need the server binaries (`/usr/lib/postgresql/*/bin`,
//! `nats-server`), which `./stack.sh test` installs when it starts its own; without them those
//! cases say they are skipped.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use uuid::Uuid;

use migration::testing::{Auth, PostgresServer};

/// Wall-clock bound of one `stack.sh check`: a few probes of at most STACK_PROBE_SECS each.
const CHECK_BOUND: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// What one `./stack.sh check` said.
struct Check {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Check {
    fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| line.starts_with("stack.sh: error:"))
            .collect()
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(&format!("{name}=")))
            .map(|rest| rest.split_whitespace().next().unwrap_or(""))
    }
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok: {}\n--- stdout\n{}--- stderr\n{}",
            self.ok, self.stdout, self.stderr
        )
    }
}

/// Runs `./stack.sh check` with only these variables (plus PATH and HOME), no stdin, under
/// `timeout`. Whatever a variable leaves out points at a port where nothing listens.
fn check(vars: &[(&str, String)]) -> Check {
    let mut env: Vec<(String, String)> = vec![
        (
            "DATABASE_URL".into(),
            format!(
                "postgres://postgres@127.0.0.1:{}/larder?sslmode=disable",
                free_port()
            ),
        ),
        (
            "NATS_URL".into(),
            format!("nats://127.0.0.1:{}", free_port()),
        ),
        ("SMTP_HOST".into(), "127.0.0.1".into()),
        ("SMTP_PORT".into(), free_port().to_string()),
        (
            "MAIL_INBOX_URL".into(),
            format!("http://127.0.0.1:{}", free_port()),
        ),
        ("NATS_MONITOR_PORT".into(), free_port().to_string()),
        ("STACK_PROBE_SECS".into(), "2".into()),
    ];
    for (key, value) in vars {
        env.retain(|(k, _)| k != key);
        env.push(((*key).into(), value.clone()));
    }
    let started = Instant::now();
    let output: Output = Command::new("timeout")
        .arg(CHECK_BOUND.as_secs().to_string())
        .arg(root().join("stack.sh"))
        .arg("check")
        .current_dir(root())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_else(|_| "/".into()))
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .expect("stack.sh runs");
    let check = Check {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_ne!(
        output.status.code(),
        Some(124),
        "stack.sh check hung (killed after {CHECK_BOUND:?}): {check:?}"
    );
    assert!(
        started.elapsed() < CHECK_BOUND,
        "stack.sh check took {:?}: {check:?}",
        started.elapsed()
    );
    check
}

// --- Servers of the test's own ------------------------------------------------------------

/// Debian's cluster after a reboot asks TCP logins for a password.
const PG_PASSWORD: &str = "s3cret";

fn password_postgres() -> Option<PostgresServer> {
    let server = PostgresServer::start(Auth::Password(PG_PASSWORD));
    if server.is_none() {
        eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
    }
    server
}

/// nats-server on a free port, with or without JetStream, killed (and its store removed) on drop.
struct NatsServer {
    child: Child,
    port: u16,
    store: PathBuf,
}

impl NatsServer {
    fn start(jetstream: bool) -> Option<Self> {
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .iter()
            .map(PathBuf::from)
            .find(|bin| bin.is_file())
            .or_else(|| {
                let path = std::env::var_os("PATH")?;
                std::env::split_paths(&path)
                    .map(|dir| dir.join("nats-server"))
                    .find(|bin| bin.is_file())
            });
        let Some(bin) = bin else {
            eprintln!("skipped: no nats-server binary");
            return None;
        };
        let port = free_port();
        let store = std::env::temp_dir().join(format!("larder-stack-test-js-{}", Uuid::new_v4()));
        let mut command = Command::new(bin);
        command.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        if jetstream {
            command.arg("-js").arg("-sd").arg(&store);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs");
        let server = Self { child, port, store };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A loopback listener that accepts connections and sends `greeting` (or nothing) on each, until
/// dropped.
struct FakeServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    fn start(greeting: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("its address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            let mut open = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        if let Some(greeting) = greeting {
                            let _ = stream.write_all(greeting.as_bytes());
                        }
                        open.push(stream); // held open: a silent server never closes either
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self { port, stop }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// --- PostgreSQL ---------------------------------------------------------------------------

#[test]
fn postgres_is_reused_only_when_a_non_interactive_login_works() {
    let Some(pg) = password_postgres() else {
        return;
    };

    // The URL stack.sh would serve itself (postgres on loopback): our own on a free port, and
    // every PostgreSQL URL follows it, keeping users, passwords and databases.
    let replaced = check(&[
        ("DATABASE_URL", pg.url("postgres", "larder")),
        (
            "ORDER_DATABASE_URL",
            format!(
                "postgres://mine:pw@127.0.0.1:{}/elsewhere?sslmode=disable",
                pg.port()
            ),
        ),
    ]);
    assert!(replaced.ok, "{replaced:?}");
    assert!(
        replaced
            .stdout
            .contains("refuses a non-interactive login as postgres"),
        "{replaced:?}"
    );
    assert!(
        replaced.stdout.contains("no password supplied"),
        "{replaced:?}"
    );
    let admin = replaced.var("DATABASE_URL").expect("DATABASE_URL printed");
    assert!(
        admin.starts_with("postgres://postgres@127.0.0.1:")
            && admin.ends_with("/larder?sslmode=disable"),
        "{replaced:?}"
    );
    assert!(!admin.contains(&format!(":{}/", pg.port())), "{replaced:?}");
    let new_address = admin
        .trim_start_matches("postgres://postgres@")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        replaced.var("ORDER_DATABASE_URL"),
        Some(format!("postgres://mine:pw@{new_address}/elsewhere?sslmode=disable").as_str()),
        "{replaced:?}"
    );
    assert_eq!(
        replaced.var("STOCK_DATABASE_URL"),
        Some(
            format!("postgres://larder_stock:larder_stock@{new_address}/larder?sslmode=disable")
                .as_str()
        ),
        "{replaced:?}"
    );

    // Credentials of the user's own: one clear line, exit 1, never a prompt.
    let refused = check(&[("DATABASE_URL", pg.url("larder:wrong", "larder"))]);
    assert!(!refused.ok, "{refused:?}");
    let errors = refused.errors();
    assert_eq!(errors.len(), 1, "{refused:?}");
    assert!(
        errors[0].contains(&format!("PostgreSQL on 127.0.0.1:{}", pg.port()))
            && errors[0].contains("password authentication failed")
            && errors[0].contains("fix DATABASE_URL"),
        "{refused:?}"
    );
    assert!(!refused.stderr.contains("Password for user"), "{refused:?}");

    // The right password: reused.
    let reused = check(&[(
        "DATABASE_URL",
        pg.url(&format!("postgres:{}", PG_PASSWORD), "larder"),
    )]);
    assert!(reused.ok, "{reused:?}");
    assert!(
        reused
            .stdout
            .contains(&format!("reusing: PostgreSQL on 127.0.0.1:{}", pg.port())),
        "{reused:?}"
    );
}

#[test]
fn a_postgres_port_that_never_answers_is_refused_in_bounded_time() {
    let silent = FakeServer::start(None);
    let refused = check(&[(
        "DATABASE_URL",
        format!(
            "postgres://larder:pw@127.0.0.1:{}/larder?sslmode=disable",
            silent.port
        ),
    )]);
    assert!(!refused.ok, "{refused:?}");
    assert_eq!(refused.errors().len(), 1, "{refused:?}");
}

// --- NATS ---------------------------------------------------------------------------------

#[test]
fn nats_is_reused_only_with_jetstream() {
    let Some(plain) = NatsServer::start(false) else {
        return;
    };
    let replaced = check(&[("NATS_URL", format!("nats://127.0.0.1:{}", plain.port))]);
    assert!(replaced.ok, "{replaced:?}");
    assert!(
        replaced.stdout.contains("without JetStream")
            && replaced.stdout.contains("starting our own on 127.0.0.1:"),
        "{replaced:?}"
    );
    let url = replaced.var("NATS_URL").expect("NATS_URL printed");
    assert_ne!(
        url,
        format!("nats://127.0.0.1:{}", plain.port),
        "{replaced:?}"
    );

    // With credentials of the user's own, stack.sh cannot stand in for it: one clear line.
    let refused = check(&[(
        "NATS_URL",
        format!("nats://user:pw@127.0.0.1:{}", plain.port),
    )]);
    assert!(!refused.ok, "{refused:?}");
    let errors = refused.errors();
    assert_eq!(errors.len(), 1, "{refused:?}");
    assert!(errors[0].contains("without JetStream"), "{refused:?}");

    let Some(jetstream) = NatsServer::start(true) else {
        return;
    };
    let reused = check(&[("NATS_URL", format!("nats://127.0.0.1:{}", jetstream.port))]);
    assert!(reused.ok, "{reused:?}");
    assert!(
        reused.stdout.contains(&format!(
            "reusing: NATS on 127.0.0.1:{} announces JetStream",
            jetstream.port
        )),
        "{reused:?}"
    );
}

// --- SMTP ---------------------------------------------------------------------------------

#[test]
fn smtp_is_reused_only_when_it_greets() {
    let inbox = FakeServer::start(Some("220 fake.test ESMTP ready\r\n"));
    let reused = check(&[("SMTP_PORT", inbox.port.to_string())]);
    assert!(reused.ok, "{reused:?}");
    assert!(
        reused
            .stdout
            .contains(&format!("reusing: SMTP on 127.0.0.1:{} greets", inbox.port)),
        "{reused:?}"
    );

    // A port that holds something else (silent, or not SMTP): our own maildev on a free port.
    let silent = FakeServer::start(None);
    let replaced = check(&[("SMTP_PORT", silent.port.to_string())]);
    assert!(replaced.ok, "{replaced:?}");
    assert!(
        replaced.stdout.contains("gives no SMTP greeting")
            && replaced
                .stdout
                .contains("starting our own maildev on 127.0.0.1:"),
        "{replaced:?}"
    );
    let line = replaced
        .stdout
        .lines()
        .find(|line| line.trim_start().starts_with("SMTP_HOST="))
        .expect("SMTP settings printed");
    assert!(
        !line.contains(&format!("SMTP_PORT={} ", silent.port)),
        "{replaced:?}"
    );

    // Where nothing listens at all: maildev on the configured port.
    let port = free_port();
    let started = check(&[("SMTP_PORT", port.to_string())]);
    assert!(started.ok, "{started:?}");
    assert!(
        started
            .stdout
            .contains(&format!("nothing answers on 127.0.0.1:{port}")),
        "{started:?}"
    );
}

// --- Debian's OS services -----------------------------------------------------------------

/// What `keep_os_services_off` does right after `apt-get install postgresql nats-server`, in a
/// private mount namespace (a tmpfs over /etc/postgresql) with stand-ins for systemctl and
/// deb-systemd-helper that only record their arguments: nothing of this machine changes.
#[test]
fn installed_packages_leave_no_os_service_to_start_at_boot() {
    if !is_root() || !Path::new("/etc/postgresql").is_dir() {
        eprintln!("skipped: needs root and /etc/postgresql for a private mount namespace");
        return;
    }
    let fake = std::env::temp_dir().join(format!("larder-stack-test-os-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&fake).expect("a temporary directory");
    for tool in ["systemctl", "deb-systemd-helper"] {
        let path = fake.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> \"{}/calls\"\n",
                fake.display()
            ),
        )
        .expect("a stand-in");
        let status = Command::new("chmod").arg("+x").arg(&path).status();
        assert!(status.is_ok_and(|s| s.success()));
    }
    let script = format!(
        r#"set -e
        mount -t tmpfs larder-test /etc/postgresql
        mkdir -p /etc/postgresql/15/main && echo auto > /etc/postgresql/15/main/start.conf
        source "{root}/stack.sh"
        before="$(printf '%s ' /etc/postgresql/*/*/start.conf)"
        # what the postgresql package's postinst creates:
        mkdir -p /etc/postgresql/16/main && echo auto > /etc/postgresql/16/main/start.conf
        SUDO=""
        PATH="{fake}:$PATH" keep_os_services_off "$before" postgresql nats-server
        echo "old=$(cat /etc/postgresql/15/main/start.conf) new=$(cat /etc/postgresql/16/main/start.conf)"
        "#,
        root = root().display(),
        fake = fake.display()
    );
    let output = Command::new("timeout")
        .args([
            "30",
            "unshare",
            "-m",
            "--propagation",
            "private",
            "bash",
            "-c",
        ])
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .expect("unshare runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let calls = std::fs::read_to_string(fake.join("calls")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&fake);
    if !output.status.success() && stderr.contains("unshare") {
        eprintln!("skipped: no private mount namespace here ({stderr})");
        return;
    }
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("old=auto new=manual"),
        "the cluster that was there stays as it was, the new one starts only by hand: {stdout}{stderr}"
    );
    for unit in ["postgresql", "nats-server"] {
        let has_unit = ["/lib/systemd/system", "/usr/lib/systemd/system"]
            .iter()
            .any(|dir| Path::new(dir).join(format!("{unit}.service")).is_file());
        if has_unit {
            assert!(
                calls.contains(&format!("systemctl disable --quiet {unit}.service"))
                    && calls.contains(&format!("deb-systemd-helper disable {unit}.service")),
                "{unit} disabled: {calls}"
            );
        }
    }
}
