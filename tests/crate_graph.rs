//! The services are independent (SPEC §1, §2): no service crate depends on another, not even
//! for its tests. What they share is the event contract, the bus plumbing, the entities and the
//! migrations; the root package alone brings them together (`larder all`, the e2e suite).

use std::process::Command;

use serde_json::Value;

const SERVICES: [&str; 4] = ["order", "stock", "notification", "delivery"];

#[test]
fn no_service_crate_depends_on_another_service_crate() {
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
    let packages = metadata["packages"].as_array().unwrap();

    let mut checked = 0;
    let mut edges = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap();
        if !SERVICES.contains(&name) {
            continue;
        }
        checked += 1;
        for dependency in package["dependencies"].as_array().unwrap() {
            let depends_on = dependency["name"].as_str().unwrap();
            // Itself, as a dev-dependency, is how a crate's tests turn on its `testing` feature.
            if SERVICES.contains(&depends_on) && depends_on != name {
                let kind = dependency["kind"].as_str().unwrap_or("normal");
                edges.push(format!("{name} -> {depends_on} ({kind})"));
            }
        }
    }
    assert_eq!(
        checked,
        SERVICES.len(),
        "every service crate is in the workspace"
    );
    assert!(edges.is_empty(), "service -> service edges: {edges:?}");
}
