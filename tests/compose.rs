//! docker-compose.yml stays runnable: the infrastructure services exist, and every service built
//! from our Dockerfile runs a real subcommand of the `larder` binary.
//!
//! No Docker engine is needed: the file is parsed, and each subcommand is checked by running
//! `larder <subcommand> --help` on the binary cargo built for this test.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use yaml_rust2::{Yaml, YamlLoader, yaml::Hash};

const INFRASTRUCTURE: [&str; 3] = ["postgres", "nats", "mailhog"];
const APP_SERVICES: [&str; 5] = ["migrate", "order", "stock", "notification", "delivery"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Resolves YAML merge keys (`<<: *anchor`, `<<: [*a, *b]`), which the parser keeps as plain keys:
/// explicit keys win over merged ones, and earlier merged mappings over later ones.
fn resolve(node: &Yaml) -> Yaml {
    match node {
        Yaml::Hash(hash) => {
            let merge_key = Yaml::String("<<".into());
            let mut out = Hash::new();
            for (key, value) in hash {
                if *key != merge_key {
                    out.insert(key.clone(), resolve(value));
                }
            }
            let sources: Vec<&Yaml> = match hash.get(&merge_key) {
                Some(Yaml::Array(items)) => items.iter().collect(),
                Some(item) => vec![item],
                None => vec![],
            };
            for source in sources {
                let Yaml::Hash(merged) = resolve(source) else {
                    panic!("a merge key (<<) must refer to a mapping, got {source:?}");
                };
                for (key, value) in merged {
                    out.entry(key).or_insert(value);
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(items) => Yaml::Array(items.iter().map(resolve).collect()),
        other => other.clone(),
    }
}

struct Compose {
    services: Vec<(String, Yaml)>,
}

impl Compose {
    fn load() -> Self {
        let path = root().join("docker-compose.yml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let docs = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        assert_eq!(
            docs.len(),
            1,
            "docker-compose.yml must hold one YAML document"
        );
        let doc = resolve(&docs[0]);
        let services = doc["services"]
            .as_hash()
            .expect("docker-compose.yml has a `services` mapping")
            .iter()
            .map(|(name, service)| {
                let name = name.as_str().expect("service names are strings").to_owned();
                assert!(service.is_hash(), "service {name} must be a mapping");
                (name, service.clone())
            })
            .collect();
        Compose { services }
    }

    fn service(&self, name: &str) -> &Yaml {
        self.services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("docker-compose.yml has no service `{name}`"))
    }

    /// Services whose image is built from the repository's Dockerfile.
    fn built_from_dockerfile(&self) -> Vec<(&str, &Yaml)> {
        self.services
            .iter()
            .filter(|(_, service)| {
                let build = &service["build"];
                match build {
                    Yaml::String(context) => matches!(context.as_str(), "." | "./"),
                    Yaml::Hash(_) => {
                        let dockerfile = build["dockerfile"].as_str().unwrap_or("Dockerfile");
                        let context = build["context"].as_str().unwrap_or(".");
                        matches!(context, "." | "./") && dockerfile == "Dockerfile"
                    }
                    _ => false,
                }
            })
            .map(|(name, service)| (name.as_str(), service))
            .collect()
    }
}

/// A compose `command` as its words (list form or a plain string).
fn command_words(service: &Yaml) -> Option<Vec<String>> {
    match &service["command"] {
        Yaml::Array(items) => Some(
            items
                .iter()
                .map(|item| match item {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    other => panic!("unexpected command word {other:?}"),
                })
                .collect(),
        ),
        Yaml::String(s) => Some(s.split_whitespace().map(str::to_owned).collect()),
        _ => None,
    }
}

/// A service's environment as (name, value) pairs (mapping or `NAME=value` list form).
fn environment(service: &Yaml) -> Vec<(String, String)> {
    let scalar = |v: &Yaml| match v {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        _ => String::new(),
    };
    match &service["environment"] {
        Yaml::Hash(hash) => hash.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Yaml::Array(items) => items
            .iter()
            .map(|item| {
                let item = scalar(item);
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => vec![],
    }
}

fn env_var<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// (published, target) pairs of a service's `ports` (short and long syntax).
fn ports(service: &Yaml) -> Vec<(Option<u16>, u16)> {
    let Some(items) = service["ports"].as_vec() else {
        return vec![];
    };
    items
        .iter()
        .map(|item| match item {
            Yaml::String(spec) => {
                let spec = spec.split('/').next().unwrap_or(spec); // drop "/tcp"
                let parts: Vec<&str> = spec.rsplitn(3, ':').collect(); // target, published, ip
                let target = parts[0].parse().expect("container port is a number");
                let published = parts
                    .get(1)
                    .map(|p| p.parse().expect("published port is a number"));
                (published, target)
            }
            Yaml::Integer(port) => (None, u16::try_from(*port).expect("port")),
            Yaml::Hash(_) => {
                let number = |v: &Yaml| match v {
                    Yaml::Integer(i) => u16::try_from(*i).ok(),
                    Yaml::String(s) => s.parse().ok(),
                    _ => None,
                };
                (
                    number(&item["published"]),
                    number(&item["target"]).expect("long-syntax port has a target"),
                )
            }
            other => panic!("unexpected ports entry {other:?}"),
        })
        .collect()
}

/// Runs the `larder` binary with `args`, killing it if it has not finished within 60 s
/// (a subcommand that ignores `--help` would start a service and never return).
fn run_larder(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Keep it from reaching any real service while it parses its arguments.
        .env("DATABASE_URL", "postgres://invalid.invalid:1/none")
        .env("NATS_URL", "nats://invalid.invalid:1")
        .spawn()
        .expect("spawn the larder binary");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait for larder").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`larder {}` did not exit within 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("collect larder's output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status, text)
}

#[test]
fn infrastructure_services_exist() {
    let compose = Compose::load();
    for name in INFRASTRUCTURE.iter().chain(APP_SERVICES.iter()) {
        compose.service(name);
    }
    assert!(
        compose.service("postgres")["healthcheck"].is_hash(),
        "postgres needs a healthcheck: migrate waits for it to be healthy"
    );
    let mailhog = ports(compose.service("mailhog"));
    for port in [1025, 8025] {
        assert!(
            mailhog.iter().any(|&(_, target)| target == port),
            "mailhog must publish {port}, got {mailhog:?}"
        );
    }
}

#[test]
fn nats_runs_with_jetstream() {
    let compose = Compose::load();
    let words = command_words(compose.service("nats")).expect("nats has a command");
    assert!(
        words.iter().any(|w| w == "-js" || w == "--jetstream"),
        "nats must be started with -js, got {words:?}"
    );
}

#[test]
fn every_built_service_runs_a_larder_subcommand() {
    // The check itself must be able to fail: the binary rejects what it does not know.
    let (status, output) = run_larder(&["no-such-subcommand", "--help"]);
    assert!(
        !status.success(),
        "`larder no-such-subcommand --help` succeeded, so a subcommand check proves nothing:\n{output}"
    );

    let compose = Compose::load();
    let built = compose.built_from_dockerfile();
    let names: Vec<&str> = built.iter().map(|(name, _)| *name).collect();
    for expected in APP_SERVICES {
        assert!(
            names.contains(&expected),
            "service {expected} must be built from the Dockerfile (built: {names:?})"
        );
    }
    for (name, service) in built {
        let words = command_words(service).unwrap_or_else(|| {
            panic!("service {name} has no `command`: say which subcommand it runs")
        });
        let subcommand = words
            .first()
            .unwrap_or_else(|| panic!("service {name} has an empty command"));
        let (status, output) = run_larder(&[subcommand, "--help"]);
        assert!(
            status.success(),
            "service {name}: `larder {subcommand} --help` failed ({status}); is `{subcommand}` a subcommand?\n{output}"
        );
    }
}

#[test]
fn app_services_talk_to_the_compose_hosts() {
    let compose = Compose::load();
    for name in APP_SERVICES {
        let env = environment(compose.service(name));
        // `migrate` is the admin; each service has its own URL (and no admin URL).
        let variable = match name {
            "migrate" => "DATABASE_URL".to_owned(),
            service => format!("{}_DATABASE_URL", service.to_uppercase()),
        };
        let database = env_var(&env, &variable).unwrap_or_default();
        assert!(
            database.contains("@postgres:") || database.contains("//postgres:"),
            "{name}: {variable} must point at the postgres service, got {database:?}"
        );
        if name != "migrate" {
            assert!(
                database.starts_with(&format!("postgres://larder_{name}:")),
                "{name}: {variable} must log in as the service's own role larder_{name}, got {database:?}"
            );
            assert_eq!(
                env_var(&env, "DATABASE_URL"),
                None,
                "{name}: a service gets no admin DATABASE_URL"
            );
        }
        let nats = env_var(&env, "NATS_URL").unwrap_or_default();
        assert!(
            nats.starts_with("nats://nats:"),
            "{name}: NATS_URL must point at the nats service, got {nats:?}"
        );
        assert_eq!(
            env_var(&env, "SMTP_HOST"),
            Some("mailhog"),
            "{name}: SMTP_HOST"
        );
    }
}

#[test]
fn migrate_knows_every_service_role_it_creates() {
    let compose = Compose::load();
    let migrate = environment(compose.service("migrate"));
    for service in ["order", "stock", "notification", "delivery"] {
        let variable = format!("{}_DATABASE_URL", service.to_uppercase());
        let own = environment(compose.service(service));
        assert_eq!(
            env_var(&migrate, &variable),
            env_var(&own, &variable),
            "migrate creates the role {service} logs in with ({variable})"
        );
    }
}

#[test]
fn order_publishes_the_api_on_port_3000() {
    let compose = Compose::load();
    let order = compose.service("order");
    let published = ports(order);
    assert!(
        published.contains(&(Some(3000), 3000)),
        "order must publish 3000:3000, got {published:?}"
    );
    let env = environment(order);
    let addr = env_var(&env, "HTTP_ADDR").unwrap_or_default();
    assert!(
        addr == "0.0.0.0:3000" || addr == "[::]:3000",
        "order must listen on all interfaces inside its container (HTTP_ADDR=0.0.0.0:3000), got {addr:?}"
    );
}

#[test]
fn dockerfile_runs_the_larder_binary() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("read Dockerfile");
    let entrypoint = dockerfile
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with("ENTRYPOINT"))
        .expect("the Dockerfile has an ENTRYPOINT");
    assert!(
        entrypoint.contains("\"larder\""),
        "the image's ENTRYPOINT must be the larder binary, got {entrypoint:?}"
    );
}

#[test]
fn the_stack_runs_the_production_profile_and_keeps_nats_unpublished() {
    let compose = Compose::load();
    for name in APP_SERVICES {
        let env = environment(compose.service(name));
        assert_eq!(
            env_var(&env, "LARDER_PROFILE"),
            Some("prod"),
            "{name}: the production profile refuses the published dev JWT secret"
        );
        let secret = env_var(&env, "JWT_SECRET").unwrap_or_default();
        assert!(
            secret.starts_with("${JWT_SECRET:?"),
            "{name}: JWT_SECRET must be required from the caller, not written here: {secret:?}"
        );
    }
    let nats = ports(compose.service("nats"));
    assert!(
        nats.iter().all(|&(_, target)| target != 4222),
        "NATS has no credentials in compose: its client port must not be published, got {nats:?}"
    );
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("read Dockerfile");
    assert!(
        dockerfile.contains("LARDER_PROFILE=prod"),
        "the image runs the production profile"
    );
}
