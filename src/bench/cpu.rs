//! CPU per completed order for the stack the bench drives, when it runs on this machine: the
//! user + system CPU of the `larder` processes, of the PostgreSQL backends serving the bench
//! database and of nats-server, from load start to the last order final (Linux `/proc`).
//!
//! Which processes count:
//! - PostgreSQL: every backend `pg_stat_activity` shows on the bench database, except the
//!   bench's own connections (`application_name` [`BENCH_APPLICATION_NAME`]). Backends come and
//!   go, so they are sampled every [`SAMPLE_EVERY`]; one that ends between two samples loses at
//!   most that interval of CPU.
//! - larder: processes named `larder`, not this one, that hold a client socket of one of those
//!   backends (so another stack's `larder` on the same machine is left out); when no socket can
//!   be matched, every other `larder` process.
//! - nats-server: processes named `nats-server` listening on a port of `NATS_URL`; when none
//!   matches, every `nats-server`.
//!
//! A process seen for the first time counts from zero if it started after the load did, else
//! from the first sample.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::Serialize;

/// The bench's own connections call themselves this; their backends are not counted.
pub const BENCH_APPLICATION_NAME: &str = "larder-bench";
/// How often the PostgreSQL backends are looked up and every counted process is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Part {
    Larder,
    Postgres,
    Nats,
}

/// One counted process: its CPU ticks when first seen (the baseline) and when last read.
#[derive(Clone, Copy, Debug)]
struct Seen {
    part: Part,
    baseline: u64,
    last: u64,
}

/// CPU of the stack per completed order, each part on its own (milliseconds).
#[derive(Clone, Debug, Serialize)]
pub struct CpuPerOrder {
    pub total_ms: f64,
    pub larder_ms: f64,
    pub postgres_ms: f64,
    pub nats_ms: f64,
    /// CPU seconds of each part over the window.
    pub larder_cpu_secs: f64,
    pub postgres_cpu_secs: f64,
    pub nats_cpu_secs: f64,
    /// From load start to the last order final (as the settle wait saw it).
    pub window_secs: f64,
    pub larder_processes: usize,
    pub postgres_backends: usize,
    pub nats_processes: usize,
}

/// Samples the stack's processes from [`CpuProbe::start`] until [`CpuProbe::finish`].
pub struct CpuProbe {
    state: Arc<Mutex<State>>,
    sampler: tokio::task::JoinHandle<()>,
    db: DatabaseConnection,
    started: Instant,
}

struct State {
    seen: HashMap<i32, Seen>,
    /// Boot-relative start of the load, in clock ticks (to compare with a process's start time).
    started_ticks: u64,
    nats_ports: Vec<u16>,
    own_pid: i32,
}

impl CpuProbe {
    /// Takes the baseline now and samples in the background. `nats_url` may list several
    /// servers, comma-separated.
    pub async fn start(db: &DatabaseConnection, nats_url: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            seen: HashMap::new(),
            started_ticks: uptime_ticks().unwrap_or(0),
            nats_ports: nats_ports(nats_url),
            own_pid: std::process::id() as i32,
        }));
        let probe_db = db.clone();
        sample(&probe_db, &state, true).await;
        let sampler = {
            let (db, state) = (probe_db.clone(), state.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SAMPLE_EVERY);
                tick.tick().await;
                let mut n = 0u64;
                loop {
                    tick.tick().await;
                    n += 1;
                    // Looking for new larder / nats-server processes walks every process's
                    // file descriptors: every 4 s is enough for processes that live long.
                    sample(&db, &state, n.is_multiple_of(16)).await;
                }
            })
        };
        Self {
            state,
            sampler,
            db: probe_db,
            started: Instant::now(),
        }
    }

    /// A last sample, then the CPU of each part divided by `completed` orders.
    pub async fn finish(self, completed: u64) -> CpuPerOrder {
        self.sampler.abort();
        let window = self.started.elapsed();
        sample(&self.db, &self.state, true).await;
        let state = self
            .state
            .lock()
            .expect("the probe's state is never poisoned");
        let tick = clock_ticks_per_sec();
        let mut secs: HashMap<Part, f64> = HashMap::new();
        let mut processes: HashMap<Part, usize> = HashMap::new();
        for seen in state.seen.values() {
            *secs.entry(seen.part).or_default() +=
                seen.last.saturating_sub(seen.baseline) as f64 / tick;
            *processes.entry(seen.part).or_default() += 1;
        }
        let get = |p| secs.get(&p).copied().unwrap_or(0.0);
        let per_order = |s: f64| s * 1000.0 / completed.max(1) as f64;
        let (larder, postgres, nats) = (get(Part::Larder), get(Part::Postgres), get(Part::Nats));
        CpuPerOrder {
            total_ms: per_order(larder + postgres + nats),
            larder_ms: per_order(larder),
            postgres_ms: per_order(postgres),
            nats_ms: per_order(nats),
            larder_cpu_secs: larder,
            postgres_cpu_secs: postgres,
            nats_cpu_secs: nats,
            window_secs: window.as_secs_f64(),
            larder_processes: processes.get(&Part::Larder).copied().unwrap_or(0),
            postgres_backends: processes.get(&Part::Postgres).copied().unwrap_or(0),
            nats_processes: processes.get(&Part::Nats).copied().unwrap_or(0),
        }
    }
}

/// One round: the bench database's backends (with their clients' ports), then, when
/// `discover`, the larder and nats-server processes, then every counted process's CPU.
async fn sample(db: &DatabaseConnection, state: &Mutex<State>, discover: bool) {
    let backends = backends(db).await.unwrap_or_default();
    let (nats_ports, own_pid) = {
        let s = state.lock().expect("the probe's state is never poisoned");
        (s.nats_ports.clone(), s.own_pid)
    };
    let found = if discover {
        let client_ports: HashSet<u16> = backends.iter().filter_map(|b| b.1).collect();
        tokio::task::spawn_blocking(move || discover_stack(own_pid, &client_ports, &nats_ports))
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut s = state.lock().expect("the probe's state is never poisoned");
    let started_ticks = s.started_ticks;
    let candidates = backends
        .iter()
        .map(|b| (b.0, Part::Postgres))
        .chain(found)
        .collect::<Vec<_>>();
    for (pid, part) in candidates {
        if s.seen.contains_key(&pid) {
            continue;
        }
        if let Some(stat) = read_stat(pid) {
            let baseline = if stat.start_ticks > started_ticks {
                0
            } else {
                stat.cpu_ticks
            };
            s.seen.insert(
                pid,
                Seen {
                    part,
                    baseline,
                    last: stat.cpu_ticks,
                },
            );
        }
    }
    for (pid, seen) in s.seen.iter_mut() {
        // A process that has ended keeps its last reading.
        if let Some(stat) = read_stat(*pid) {
            seen.last = seen.last.max(stat.cpu_ticks);
        }
    }
}

/// (backend pid, client port) of every backend on the bench database but the bench's own.
async fn backends(db: &DatabaseConnection) -> Result<Vec<(i32, Option<u16>)>, sea_orm::DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pid, client_port FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name <> $1 AND pid <> pg_backend_pid()",
            [BENCH_APPLICATION_NAME.into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let pid: i32 = r.try_get("", "pid").ok()?;
            let port: Option<i32> = r.try_get("", "client_port").ok()?;
            Some((pid, port.and_then(|p| u16::try_from(p).ok())))
        })
        .collect())
}

/// The larder processes holding a socket from one of `client_ports` (or every other larder if
/// none does) and the nats-servers listening on one of `nats_ports` (or every nats-server).
fn discover_stack(
    own_pid: i32,
    client_ports: &HashSet<u16>,
    nats_ports: &[u16],
) -> Vec<(i32, Part)> {
    let sockets = tcp_sockets();
    let larder_inodes: HashSet<u64> = sockets
        .iter()
        .filter(|s| !s.listening && client_ports.contains(&s.local_port))
        .map(|s| s.inode)
        .collect();
    let nats_inodes: HashSet<u64> = sockets
        .iter()
        .filter(|s| s.listening && nats_ports.contains(&s.local_port))
        .map(|s| s.inode)
        .collect();
    let (mut larder_all, mut larder_matched) = (Vec::new(), Vec::new());
    let (mut nats_all, mut nats_matched) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == own_pid {
            continue;
        }
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        let (all, matched, inodes) = match comm.trim_end() {
            "larder" => (&mut larder_all, &mut larder_matched, &larder_inodes),
            "nats-server" => (&mut nats_all, &mut nats_matched, &nats_inodes),
            _ => continue,
        };
        all.push(pid);
        if holds_socket(pid, inodes) {
            matched.push(pid);
        }
    }
    let pick = |all: Vec<i32>, matched: Vec<i32>| if matched.is_empty() { all } else { matched };
    pick(larder_all, larder_matched)
        .into_iter()
        .map(|pid| (pid, Part::Larder))
        .chain(
            pick(nats_all, nats_matched)
                .into_iter()
                .map(|pid| (pid, Part::Nats)),
        )
        .collect()
}

fn holds_socket(pid: i32, inodes: &HashSet<u64>) -> bool {
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|target| {
                let target = target.to_str()?.to_owned();
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse::<u64>()
                    .ok()
            })
            .is_some_and(|inode| inodes.contains(&inode))
    })
}

struct TcpSocket {
    local_port: u16,
    listening: bool,
    inode: u64,
}

/// Every TCP socket of the machine (`/proc/net/tcp` and `tcp6`).
fn tcp_sockets() -> Vec<TcpSocket> {
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() < 10 {
                continue;
            }
            let Some(port) = fields[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            else {
                continue;
            };
            let Ok(inode) = fields[9].parse::<u64>() else {
                continue;
            };
            sockets.push(TcpSocket {
                local_port: port,
                listening: fields[3] == "0A",
                inode,
            });
        }
    }
    sockets
}

struct Stat {
    /// utime + stime, every thread of the process.
    cpu_ticks: u64,
    /// When the process started, in clock ticks after boot.
    start_ticks: u64,
}

fn read_stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// `/proc/<pid>/stat`: the name in parentheses may hold spaces, so fields count from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let start_ticks: u64 = fields.get(19)?.parse().ok()?;
    Some(Stat {
        cpu_ticks: utime + stime,
        start_ticks,
    })
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn uptime_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some((secs * clock_ticks_per_sec()) as u64)
}

/// The ports of a NATS URL list (`nats://host:port,host:port`); 4222 where none is given.
fn nats_ports(urls: &str) -> Vec<u16> {
    urls.split(',')
        .filter_map(|url| {
            let url = url.trim();
            if url.is_empty() {
                return None;
            }
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            let host_port = rest.rsplit('@').next().unwrap_or(rest);
            let host_port = host_port.split('/').next().unwrap_or(host_port);
            Some(
                host_port
                    .rsplit_once(':')
                    .and_then(|(_, port)| port.parse().ok())
                    .unwrap_or(4222),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_name_still_parses() {
        let line = "42 (tokio worker) S 1 42 42 0 -1 4194560 100 0 0 0 700 300 0 0 20 0 9 0 5000 \
                    1000 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_stat(line).expect("parses");
        assert_eq!(stat.cpu_ticks, 1000, "utime + stime");
        assert_eq!(stat.start_ticks, 5000);
    }

    #[test]
    fn nats_ports_come_from_every_url_of_the_list() {
        assert_eq!(nats_ports("nats://127.0.0.1:4222"), vec![4222]);
        assert_eq!(
            nats_ports("nats://a:4223, nats://user:pw@b:4224,c"),
            vec![4223, 4224, 4222]
        );
    }

    #[test]
    fn this_process_can_read_its_own_cpu() {
        let stat = read_stat(std::process::id() as i32).expect("own /proc/<pid>/stat");
        // `/proc/uptime` is rounded to 10 ms and the kernel converts the two clocks apart, so a
        // process started a moment ago can read a tick after "now": allow a second.
        let now = uptime_ticks().expect("uptime");
        assert!(stat.start_ticks > 0);
        assert!(stat.start_ticks <= now + clock_ticks_per_sec() as u64);
    }
}
