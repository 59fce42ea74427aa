//! [`MailInbox`]: an SMTP inbox of a test's own, a maildev process on free ports.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use uuid::Uuid;

/// One email as maildev's REST API (`GET /email`) shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct Email {
    pub subject: String,
    pub to: Vec<Address>,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub html: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Address {
    pub address: String,
}

/// How often [`MailInbox::start`] picks new ports when maildev finds one taken.
const START_ATTEMPTS: usize = 5;
const WEB_USER: &str = "larder-test";

/// A maildev process of the test's own (never on 1025: whatever inbox holds that is left alone),
/// killed on drop and its directory (mail and log) removed then, so tests run in parallel and
/// can take SMTP away ([`stop`](Self::stop)) and bring it back on the same port
/// ([`start_again`](Self::start_again)).
///
/// maildev cannot listen on port 0 (it reads 0 as its defaults, 1025 and 1080, and prints the
/// ports it was given, not the ones bound), so the inbox picks two free ports and, when maildev
/// exits because another process took one meanwhile, starts again on two others. Its web API
/// wants a password of this inbox's own: a 200 on the web port comes from this maildev.
pub struct MailInbox {
    smtp_port: u16,
    web_port: u16,
    password: String,
    dir: PathBuf,
    child: Option<Child>,
    client: reqwest::Client,
}

impl MailInbox {
    /// Starts maildev on free ports and waits until both its SMTP port and its API answer.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("larder-maildev-{}", Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("mail")).expect("a mail directory can be created");
        let mut inbox = Self {
            smtp_port: 0,
            web_port: 0,
            password: Uuid::new_v4().simple().to_string(),
            dir,
            child: None,
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
        };
        for _ in 0..START_ATTEMPTS {
            (inbox.smtp_port, inbox.web_port) = two_free_ports();
            if inbox.run().await == Started::Ready {
                return inbox;
            }
        }
        panic!("maildev found one of its ports taken at each of {START_ATTEMPTS} starts");
    }

    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// Kills maildev, as an SMTP outage: connections to its port are refused.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts maildev again on the same ports (the service under test was given the SMTP one)
    /// and waits until it answers. It still shows the emails it had: it reloads them from its
    /// mail directory.
    pub async fn start_again(&mut self) {
        self.stop();
        if self.run().await == Started::PortTaken {
            panic!(
                "SMTP port {} or web port {} was taken while maildev was stopped",
                self.smtp_port, self.web_port
            );
        }
    }

    /// Every email received so far.
    pub async fn emails(&self) -> Vec<Email> {
        self.get_emails()
            .await
            .unwrap_or_else(|e| panic!("maildev's REST API answers GET /email: {e}"))
    }

    async fn get_emails(&self) -> Result<Vec<Email>, reqwest::Error> {
        self.client
            .get(format!("http://127.0.0.1:{}/email", self.web_port))
            .basic_auth(WEB_USER, Some(&self.password))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    /// Runs maildev on this inbox's ports until it answers, or until it exits because one of
    /// them is taken.
    async fn run(&mut self) -> Started {
        let program = maildev_program();
        let log_path = self.dir.join("maildev.log");
        let log = std::fs::File::create(&log_path).expect("maildev's log can be created");
        let child = Command::new(&program)
            .args(["--smtp", &self.smtp_port.to_string()])
            .args(["--web", &self.web_port.to_string()])
            .args(["--ip", "127.0.0.1", "--silent"])
            .args(["--web-user", WEB_USER, "--web-pass", &self.password])
            .arg("--mail-directory")
            .arg(self.dir.join("mail"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log can be shared"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): the tests start their own maildev; run them with \
                     `./stack.sh test`, which installs it, or `npm install -g maildev@2.2.1`, \
                     or set MAILDEV to its path",
                    program.display()
                )
            });
        // In `self` at once, so that a panic below kills it too (on drop).
        self.child = Some(child);
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.exit_status() {
                self.child = None;
                if log().contains("EADDRINUSE") {
                    return Started::PortTaken;
                }
                panic!("maildev exited at start ({status}): {}", log());
            }
            // maildev binds both ports before it serves a request, and exits when a bind fails:
            // once the API has answered, a maildev still running holds the SMTP port too.
            let answered = self.get_emails().await.is_ok()
                && tokio::net::TcpStream::connect(("127.0.0.1", self.smtp_port))
                    .await
                    .is_ok();
            if answered && self.exit_status().is_none() {
                return Started::Ready;
            }
            assert!(
                Instant::now() < deadline,
                "maildev did not answer within 30 s: {}",
                log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl MailInbox {
    /// How maildev exited, if it has.
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut().expect("maildev was started");
        child.try_wait().expect("maildev can be polled")
    }
}

impl Drop for MailInbox {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Started {
    Ready,
    PortTaken,
}

/// Two distinct loopback ports nobody listened on a moment ago (both held at once, so that they
/// differ); maildev may still find one taken by the time it binds.
fn two_free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().expect("a bound address").port();
    (port(&a), port(&b))
}

/// The maildev to run: `$MAILDEV` (set by `./stack.sh test`), else `maildev` on PATH, else npm's
/// global bin directory (outside PATH for some users).
fn maildev_program() -> PathBuf {
    if let Some(bin) = std::env::var_os("MAILDEV").filter(|v| !v.is_empty()) {
        return bin.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("maildev"))
        .find(|bin| bin.is_file());
    if let Some(bin) = on_path {
        return bin;
    }
    let npm_prefix = Command::new("npm")
        .args(["prefix", "-g"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    npm_prefix
        .map(|prefix| prefix.join("bin/maildev"))
        .filter(|bin| bin.is_file())
        .unwrap_or_else(|| "maildev".into())
}
