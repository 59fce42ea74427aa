//! What a login costs, bounded: rate limits per client address and per account on
//! `POST /auth/login` and `/auth/register` (governor, 429 + `Retry-After`), and password hashing
//! on a fixed pool of threads so a flood queues instead of allocating argon2's 19 MiB per request
//! at once (SPEC §6 last line).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::{Semaphore, oneshot};

use super::problem::ApiError;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Settings of [`AuthLimits`].
#[derive(Clone, Copy, Debug)]
pub struct AuthLimitSettings {
    /// Login and register attempts per client address per minute (also the burst).
    pub per_ip_per_minute: u32,
    /// Login attempts per account per minute (also the burst); a failed attempt counts twice.
    pub per_account_per_minute: u32,
    /// Threads hashing passwords; 0 = one per core.
    pub hash_threads: usize,
    /// Hashes waiting for a thread before further logins get 503.
    pub hash_queue: usize,
}

/// The rate limiters and the hashing pool, shared by the auth handlers as endpoint data.
#[derive(Clone)]
pub struct AuthLimits {
    per_ip: Arc<Keyed<IpAddr>>,
    per_account: Arc<Keyed<String>>,
    checks: Arc<AtomicU64>,
    hasher: PasswordPool,
}

/// Forget keys not seen lately every this many checks, so random emails cannot grow the maps.
const RETAIN_EVERY: u64 = 1024;

impl AuthLimits {
    pub fn new(settings: AuthLimitSettings) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"));
        let threads = if settings.hash_threads == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            settings.hash_threads
        };
        Self {
            per_ip: Arc::new(RateLimiter::keyed(quota(settings.per_ip_per_minute))),
            per_account: Arc::new(RateLimiter::keyed(quota(settings.per_account_per_minute))),
            checks: Arc::default(),
            hasher: PasswordPool::new(threads, settings.hash_queue),
        }
    }

    /// One attempt from `ip`; 429 when the address is over its quota.
    pub fn check_client(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        self.housekeeping();
        let Some(ip) = ip else { return Ok(()) };
        self.per_ip.check_key(&ip).map_err(|not_until| {
            ApiError::too_many_requests(
                "too many attempts from this address: slow down",
                retry_after(&not_until),
            )
        })
    }

    /// One login attempt for `email`; 429 when the account is over its quota.
    pub fn check_account(&self, email: &str) -> Result<(), ApiError> {
        self.per_account
            .check_key(&account_key(email))
            .map_err(|not_until| {
                ApiError::too_many_requests(
                    "too many login attempts for this account: wait before trying again",
                    retry_after(&not_until),
                )
            })
    }

    /// A failed login costs the account a second attempt: repeated failures slow it down.
    pub fn record_failure(&self, email: &str) {
        let _ = self.per_account.check_key(&account_key(email));
    }

    /// Runs `work` (argon2) on the hashing pool; 503 when too many are already waiting.
    pub async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.hasher.run(work).await
    }

    fn housekeeping(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.per_ip.retain_recent();
            self.per_account.retain_recent();
        }
    }
}

/// Accounts are keyed as the login compares them: trimmed, case-insensitive, bounded.
fn account_key(email: &str) -> String {
    email
        .trim()
        .chars()
        .take(254)
        .collect::<String>()
        .to_lowercase()
}

fn retry_after(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

type Job = Box<dyn FnOnce() + Send>;

/// glibc serves a freed 19 MiB argon2 buffer's successors from its heap arenas (its mmap threshold
/// grows to 32 MiB after the first free), and a thread switches arenas when its own is busy: a
/// login flood left ~3 buffers in each of 7 arenas, 0.4 GB that was never given back (measured).
/// A fixed threshold of 1 MiB keeps every large buffer an mmap of its own, unmapped on free.
fn return_large_allocations_to_the_os() {
    #[cfg(target_env = "gnu")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes allocator tuning; M_MMAP_THRESHOLD takes a byte count.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        });
    }
}

/// A fixed set of threads for password hashing. Only these threads ever run argon2, so only
/// their allocator arenas hold its memory: at most `threads` x 19 MiB, whatever the load.
#[derive(Clone)]
struct PasswordPool {
    jobs: mpsc::Sender<Job>,
    admitted: Arc<Semaphore>,
}

impl PasswordPool {
    fn new(threads: usize, queue: usize) -> Self {
        return_large_allocations_to_the_os();
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // every sender is gone
                        }
                    }
                })
                .expect("a password hashing thread starts");
        }
        Self {
            jobs,
            admitted: Arc::new(Semaphore::new(threads.max(1) + queue)),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let Ok(permit) = self.admitted.clone().try_acquire_owned() else {
            return Err(ApiError::unavailable(
                "too many logins at once: retry in a moment",
            ));
        };
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
            drop(permit);
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::internal(anyhow::anyhow!("the hashing threads are gone")))?;
        rx.await
            .map_err(|_| ApiError::internal(anyhow::anyhow!("a password hash panicked")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: u32, per_account: u32) -> AuthLimits {
        AuthLimits::new(AuthLimitSettings {
            per_ip_per_minute: per_ip,
            per_account_per_minute: per_account,
            hash_threads: 1,
            hash_queue: 1,
        })
    }

    #[test]
    fn an_address_over_its_quota_gets_429_with_retry_after() {
        let limits = limits(3, 100);
        let ip = Some("10.0.0.1".parse().unwrap());
        for _ in 0..3 {
            assert!(limits.check_client(ip).is_ok());
        }
        match limits.check_client(ip) {
            Err(ApiError::TooManyRequests(_, secs)) => assert!((1..=20).contains(&secs)),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(
            limits
                .check_client(Some("10.0.0.2".parse().unwrap()))
                .is_ok(),
            "another address has its own quota"
        );
    }

    #[test]
    fn failures_use_up_an_account_twice_as_fast_whatever_its_case() {
        let limits = limits(100, 4);
        assert!(limits.check_account("A@example.com").is_ok());
        limits.record_failure("a@example.com");
        assert!(limits.check_account(" a@EXAMPLE.com").is_ok());
        limits.record_failure("a@example.com");
        assert!(limits.check_account("a@example.com").is_err());
        assert!(limits.check_account("b@example.com").is_ok());
    }

    #[tokio::test]
    async fn the_pool_refuses_work_beyond_threads_plus_queue() {
        let limits = limits(100, 100);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = std::sync::Mutex::new(wait);
        let blocked = tokio::spawn({
            let limits = limits.clone();
            async move {
                limits
                    .hash(move || {
                        let _ = wait.lock().unwrap().recv();
                    })
                    .await
            }
        });
        let queued = tokio::spawn({
            let limits = limits.clone();
            async move { limits.hash(|| 1).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(matches!(
            limits.hash(|| 2).await,
            Err(ApiError::Unavailable(..))
        ));
        release.send(()).unwrap();
        assert!(blocked.await.unwrap().is_ok());
        assert_eq!(queued.await.unwrap().unwrap(), 1);
    }
}
