//! What an operator installs: the systemd units, the Grafana dashboard and
//! the example settings. The units' directives are checked as text; where
//! `systemd-analyze` is installed, their exposure scores are checked too.

use crate::support::{TestApp, scrape};
use registrar::settings;
use std::collections::BTreeSet;

fn directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('['))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

fn unit_path(name: &str) -> String {
    format!("{}/systemd/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The overall exposure `systemd-analyze security` gives a unit file, or
/// `None` where systemd-analyze (250 or later, for `--offline`) is missing.
fn exposure(unit: &str) -> Option<f64> {
    let output = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit_path(unit))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let score = text
        .lines()
        .find_map(|line| line.split("Overall exposure level for ").nth(1))?
        .split(": ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok();
    if score.is_none() {
        eprintln!("systemd-analyze gave no score:\n{text}");
    }
    score
}

#[test]
fn the_units_score_as_systemd_analyze_security_says_when_it_is_installed() {
    for (unit, most) in [
        ("registrar.service", 2.0),
        ("registrar-backup.service", 1.0),
    ] {
        match exposure(unit) {
            Some(score) => assert!(score < most, "{unit} scores {score}, want under {most}"),
            None => eprintln!("systemd-analyze is not installed: {unit} checked as text only"),
        }
    }
}

#[test]
fn the_systemd_unit_is_hardened_and_notifies_readiness() {
    let unit = std::fs::read_to_string(unit_path("registrar.service")).expect("read unit");
    let found = directives(&unit);
    let has = |key: &str, value: &str| found.iter().any(|(k, v)| k == key && v == value);
    for (key, value) in [
        ("Type", "notify"),
        (
            "ExecStart",
            "/usr/bin/registrar serve --config /etc/registrar/registrar.toml",
        ),
        ("ConditionPathExists", "/etc/registrar/registrar.toml"),
        ("After", "network-online.target"),
        ("Wants", "network-online.target"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "registrar"),
        ("ConfigurationDirectory", "registrar"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("PrivateMounts", "yes"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallErrorNumber", "EPERM"),
        ("UMask", "0077"),
    ] {
        assert!(has(key, value), "{key}={value} missing from the unit");
    }
    let denied = found
        .iter()
        .find(|(k, v)| k == "SystemCallFilter" && v.starts_with('~'))
        .map(|(_, v)| v.as_str())
        .expect("a deny list of system calls");
    for group in ["@privileged", "@resources", "@mount", "@debug", "@obsolete"] {
        assert!(denied.contains(group), "{group} is not denied: {denied}");
    }
    assert!(
        !found.iter().any(|(k, _)| k == "PrivateUsers"),
        "PrivateUsers= would take port 25 away from CAP_NET_BIND_SERVICE"
    );
    for line in unit
        .lines()
        .filter(|l| !l.trim().starts_with('#') && !l.trim().is_empty())
    {
        let line = line.trim();
        assert!(
            line.starts_with('[') || line.contains('='),
            "not a directive: {line}"
        );
    }
}

#[test]
fn the_backup_timer_runs_the_backup_command_without_network() {
    let service =
        std::fs::read_to_string(unit_path("registrar-backup.service")).expect("read unit");
    let timer = std::fs::read_to_string(unit_path("registrar-backup.timer")).expect("read timer");
    let service = directives(&service);
    let timer = directives(&timer);
    let has = |found: &[(String, String)], key: &str, value: &str| {
        found.iter().any(|(k, v)| k == key && v == value)
    };
    let exec = service
        .iter()
        .find(|(k, _)| k == "ExecStart")
        .map(|(_, v)| v.as_str())
        .expect("ExecStart");
    assert!(
        exec.contains("/usr/bin/registrar --config /etc/registrar/registrar.toml backup "),
        "{exec}"
    );
    for (key, value) in [
        ("Type", "oneshot"),
        ("DynamicUser", "yes"),
        ("User", "registrar"),
        ("PrivateNetwork", "yes"),
        ("CapabilityBoundingSet", ""),
        ("ProtectSystem", "strict"),
    ] {
        assert!(
            has(&service, key, value),
            "{key}={value} missing from the backup unit"
        );
    }
    assert!(has(&timer, "Persistent", "true"));
    assert!(timer.iter().any(|(k, _)| k == "OnCalendar"));
}

#[test]
fn the_example_settings_are_valid() {
    let file = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"));
    let settings = settings::load(Some(file)).expect("config/example.toml is valid");
    assert_eq!(settings.services.len(), 2);
    assert!(!settings.services[1].policy.portal);
    assert_eq!(settings.http.public_url.scheme(), "https");
}

/// The metric names a PromQL text refers to.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("registrar_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

#[tokio::test]
async fn the_grafana_dashboard_uses_only_metrics_the_daemon_exports() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana/registrar.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read the dashboard"))
            .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("an expression").to_owned());
        }
    }
    // Series whose labels come from traffic (decisions, reply codes)
    // appear once a message has been answered; a webhook endpoint's, once
    // one is configured.
    let receiver = crate::support::receiver::Receiver::start().await;
    let app = TestApp::spawn_with(|settings| {
        settings.webhooks = vec![registrar::settings::WebhookEndpoint {
            name: "crm".into(),
            url: url::Url::parse(&receiver.url()).expect("url"),
            secret: registrar::domain::WebhookSecret::parse(crate::support::receiver::SECRET)
                .expect("secret"),
            events: registrar::domain::EventKind::LIFECYCLE.to_vec(),
        }];
    })
    .await;
    app.mail_support("Jane", "jane@example.com", "dashboard@example.com")
        .await
        .assert_code(250);
    let scraped = scrape(&app).await;

    let used = metric_names(&exprs.join("\n"));
    assert!(used.len() >= 15, "{used:?}");
    for name in used {
        let family = ["_total", "_bucket", "_sum", "_count", "_info"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        assert!(
            scraped.has_family(family),
            "the dashboard uses {name}, which /metrics does not declare"
        );
    }
}
