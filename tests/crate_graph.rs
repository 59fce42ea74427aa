//! The services are independent (SPEC §1, §2): no service crate depends on another, not even
//! for its tests. What they share is the event contract, the bus plumbing, the entities and the
//! migrations; the root package alone brings them together (`larder all`, the e2e suite).
//! Two more crates keep to their side of a line: the API client (`larder-api-client`) knows the
//! API, not the server, and the shared test fixtures (`larder-test-support`) never reach
//! production.

use std::process::Command;

use serde_json::Value;

const SERVICES: [&str; 4] = ["order", "stock", "notification", "delivery"];
const CLIENT: &str = "larder-api-client";
const TEST_SUPPORT: &str = "larder-test-support";

/// The workspace's packages, as `cargo metadata` lists them.
fn workspace_packages() -> Vec<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"].as_array().unwrap().clone()
}

/// `(package, dependency, kind)` for every dependency of every workspace package.
fn edges(packages: &[Value]) -> Vec<(String, String, String)> {
    let mut edges = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap();
        for dependency in package["dependencies"].as_array().unwrap() {
            edges.push((
                name.to_owned(),
                dependency["name"].as_str().unwrap().to_owned(),
                dependency["kind"].as_str().unwrap_or("normal").to_owned(),
            ));
        }
    }
    edges
}

fn names(packages: &[Value]) -> Vec<&str> {
    packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

#[test]
fn no_service_crate_depends_on_another_service_crate() {
    let packages = workspace_packages();
    let checked = names(&packages)
        .into_iter()
        .filter(|name| SERVICES.contains(name))
        .count();
    assert_eq!(
        checked,
        SERVICES.len(),
        "every service crate is in the workspace"
    );
    let found: Vec<String> = edges(&packages)
        .into_iter()
        // Itself, as a dev-dependency, is how a crate's tests turn on its `testing` feature.
        .filter(|(from, to, _)| {
            SERVICES.contains(&from.as_str()) && SERVICES.contains(&to.as_str()) && from != to
        })
        .map(|(from, to, kind)| format!("{from} -> {to} ({kind})"))
        .collect();
    assert!(found.is_empty(), "service -> service edges: {found:?}");
}

#[test]
fn the_api_client_depends_on_no_workspace_crate() {
    let packages = workspace_packages();
    let workspace = names(&packages);
    assert!(workspace.contains(&CLIENT), "{CLIENT} is in the workspace");
    let found: Vec<String> = edges(&packages)
        .into_iter()
        .filter(|(from, to, _)| from == CLIENT && workspace.contains(&to.as_str()))
        .map(|(from, to, kind)| format!("{from} -> {to} ({kind})"))
        .collect();
    assert!(
        found.is_empty(),
        "a client of the API, not of the server: {found:?}"
    );
}

#[test]
fn the_test_support_crate_is_only_ever_a_dev_dependency() {
    let packages = workspace_packages();
    assert!(
        names(&packages).contains(&TEST_SUPPORT),
        "{TEST_SUPPORT} is in the workspace"
    );
    let found: Vec<String> = edges(&packages)
        .into_iter()
        .filter(|(_, to, kind)| to == TEST_SUPPORT && kind != "dev")
        .map(|(from, to, kind)| format!("{from} -> {to} ({kind})"))
        .collect();
    assert!(
        found.is_empty(),
        "test fixtures in a production dependency graph: {found:?}"
    );
}
