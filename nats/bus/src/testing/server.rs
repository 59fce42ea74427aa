//! NATS servers of the test's own: `nats-server` processes on free loopback ports with JetStream
//! stores in a temporary directory, so a test can kill one and start it again (or run a
//! cluster) without disturbing the tests that share the machine's server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `nats-server` processes of the test's own, routed to each other when there are several, each
/// with a JetStream store under the test's temporary directory; killed and removed on drop.
pub struct NatsCluster {
    nodes: Vec<Option<Child>>,
    client_ports: Vec<u16>,
    dir: PathBuf,
}

fn nats_server_binary() -> &'static str {
    let on_path = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        "nats-server"
    } else {
        "/usr/sbin/nats-server"
    }
}

impl NatsCluster {
    /// `size` nodes (1: a lone server), up and with JetStream ready.
    pub async fn start(size: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "larder-test-nats-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        for i in 0..size {
            let mut config = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{client}\njetstream {{ store_dir: \"{store}\" }}\n",
                client = client_ports[i],
                store = dir.join(format!("n{i}")).display(),
            );
            if size > 1 {
                config.push_str(&format!(
                    "cluster {{ name: larder_test, listen: 127.0.0.1:{route}, routes: [{routes}] }}\n",
                    route = route_ports[i],
                ));
            }
            std::fs::write(dir.join(format!("n{i}.conf")), config).unwrap();
        }
        let mut cluster = Self {
            nodes: (0..size).map(|_| None).collect(),
            client_ports,
            dir,
        };
        for i in 0..size {
            cluster.restart(i);
        }
        cluster.wait_for_jetstream().await;
        cluster
    }

    /// Starts node `i` (again), on its port and store.
    pub fn restart(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("n{i}.log")))
            .unwrap();
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(self.dir.join(format!("n{i}.conf")))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nats-server is installed (./stack.sh test installs it)");
        self.nodes[i] = Some(child);
    }

    /// Every node's client URL, comma-separated: what `NATS_URL` takes for a cluster.
    pub fn url(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until the servers can place a stream on every node (a cluster's JetStream meta
    /// leader is elected and every peer has joined).
    pub async fn wait_for_jetstream(&self) {
        let give_up = Instant::now() + Duration::from_secs(60);
        let servers: Vec<String> = self.url().split(',').map(str::to_owned).collect();
        loop {
            let last_error = match async_nats::connect(servers.clone()).await {
                Ok(client) => {
                    let js = async_nats::jetstream::new(client);
                    let probe = async_nats::jetstream::stream::Config {
                        name: "CLUSTER_PROBE".into(),
                        subjects: vec!["cluster-probe".into()],
                        num_replicas: self.nodes.len(),
                        storage: async_nats::jetstream::stream::StorageType::Memory,
                        ..Default::default()
                    };
                    match js.create_stream(probe).await {
                        Ok(_) => {
                            let _ = js.delete_stream("CLUSTER_PROBE").await;
                            return;
                        }
                        Err(error) => error.to_string(),
                    }
                }
                Err(error) => error.to_string(),
            };
            assert!(
                Instant::now() < give_up,
                "the JetStream cluster did not form ({last_error}; logs in {})",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Kills node `i` at once, as `kill -9` would.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}
