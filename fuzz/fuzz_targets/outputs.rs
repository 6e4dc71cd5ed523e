//! Any values from the cluster in the report (made clean the way kubeship cleans what it reads
//! from the cluster): `$GITHUB_OUTPUT` reads back the same under the runner's rules, every
//! dotenv line is one `KUBESHIP_<OUTPUT>=` and the file stays in GitLab's limit, the JSON line
//! parses and holds no `#`.
#![no_main]

use kubeship::report::{ContainerReport, Report, Status, TargetReport, files};
use kubeship::workload::Kind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{0}');
    let (previous, message, revision) =
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let report = Report {
        status: Status::Failed,
        digest: Some("sha256:00".into()),
        image: Some("r/a@sha256:00".into()),
        changed: true,
        duration_seconds: 1.0,
        targets: vec![TargetReport {
            kind: Kind::Deployment,
            namespace: "prod".into(),
            name: "api".into(),
            status: Status::Failed,
            changed: true,
            revision: Some(kubeship::untrusted::line(revision)),
            replicas: 1,
            ready_replicas: 0,
            message: kubeship::untrusted::short(message, 2000),
            containers: vec![ContainerReport {
                name: "app".into(),
                previous_image: kubeship::untrusted::line(previous),
                image: "r/a@sha256:00".into(),
            }],
            image_ids: Vec::new(),
            diagnostics: Vec::new(),
        }],
        truncated: false,
    };
    let outputs = report.outputs();
    let parsed = kubeship_testkit::github::parse_output(&files::github_output(&outputs))
        .expect("the runner accepts the file");
    assert_eq!(parsed.len(), outputs.len());
    for ((name, value), (read_name, read_value)) in outputs.iter().zip(&parsed) {
        assert_eq!((*name, value.as_str()), (read_name.as_str(), read_value.as_str()));
    }
    let (dotenv, _) = files::dotenv(&report);
    assert!(dotenv.len() <= 5 * 1024);
    for line in dotenv.lines() {
        assert!(line.starts_with("KUBESHIP_") && line.contains('='), "{line:?}");
    }
    let json = report.json();
    assert!(!json.contains('#'));
    serde_json::from_str::<serde_json::Value>(&json).expect("the JSON line parses");
});
