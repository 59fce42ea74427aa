use crate::helpers::spawn_app;

#[test]
fn the_checked_in_openapi_json_is_the_spec_the_service_serves() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json");
    let checked_in = std::fs::read_to_string(&path).expect("openapi.json at the repository root");
    assert!(
        checked_in.trim_end() == order::api::spec_json().trim_end(),
        "openapi.json is stale: regenerate it with `cargo run -- openapi > openapi.json`"
    );
}

#[tokio::test]
async fn the_served_spec_and_swagger_ui_are_there() {
    let app = spawn_app().await;
    let served = app
        .api
        .get_anonymous("/openapi.json")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served.trim_end(), order::api::spec_json().trim_end());
    let docs = app.api.get_anonymous("/docs/").await.unwrap();
    assert_eq!(docs.status(), reqwest::StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[test]
fn every_operation_has_a_summary_a_description_and_its_errors() {
    let spec: serde_json::Value = serde_json::from_str(&order::api::spec_json()).unwrap();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let name = format!("{method} {path}");
            assert!(operation["summary"].is_string(), "{name} has no summary");
            assert!(
                operation["description"].is_string(),
                "{name} has no description"
            );
            if !path.starts_with("/health") && !path.starts_with("/ready") {
                assert!(
                    operation["responses"].get("401").is_some() || path.starts_with("/auth"),
                    "{name} lacks 401"
                );
                assert!(
                    operation["responses"].get("500").is_some(),
                    "{name} lacks 500"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_root_leads_to_the_console_which_is_served_with_its_assets() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = client.get(app.api.url("/")).send().await.unwrap();
    assert_eq!(root.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(root.headers()["location"], "/console/");
    for (path, content_type, mark) in [
        ("/console/", "text/html", "console.js"),
        ("/console/console.js", "text/javascript", "/merchant/events"),
        ("/console/console.css", "text/css", ".gauge"),
    ] {
        let asset = app.api.get_anonymous(path).await.unwrap();
        assert_eq!(asset.status(), reqwest::StatusCode::OK, "{path}");
        let served_type = asset.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            served_type.starts_with(content_type),
            "{path}: {served_type}"
        );
        let policy = asset.headers()["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("default-src 'self'"), "{path}: {policy}");
        assert!(asset.text().await.unwrap().contains(mark), "{path}");
    }
    // The API itself is still there beside it.
    let health = app.api.get_anonymous("/health").await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
}
