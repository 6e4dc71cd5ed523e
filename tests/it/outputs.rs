//! Output destinations checked before any request: a destination that cannot be written is
//! exit 2 with nothing sent to the registry or the cluster, the message naming it, and the
//! JSON line still printed; folders that do not exist yet are made.

use kubeship_testkit::FaultProxy;

use crate::world::World;

/// `$GITHUB_OUTPUT` naming a directory, and `results-dir` naming a file: exit 2 before any
/// request, each named; the JSON line is the last line of standard output.
#[test]
fn unwritable_destinations_send_nothing() {
    let w = World::kubesim();
    let proxy = FaultProxy::start(&format!("http://{}", w.registry.host)).unwrap();
    let image = format!("{}/acme/api:v2", proxy.host());
    let file = w.dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    w.sim().clear_requests();
    let cases = [
        ("GITHUB_OUTPUT", w.dir.path().to_str().unwrap().to_owned(), "$GITHUB_OUTPUT"),
        ("INPUT_RESULTS-DIR", file.to_str().unwrap().to_owned(), "results-dir"),
        ("INPUT_DOTENV-FILE", file.join("deploy.env").to_str().unwrap().to_owned(), "dotenv-file"),
    ];
    for (variable, value, named) in cases {
        let output = w
            .command(&[("INPUT_IMAGE", &image), ("INPUT_DEPLOYMENT", "api"), (variable, &value)])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{variable}: {stderr}");
        assert!(stderr.contains(named) && stderr.contains(&value), "{stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(last["status"], "failed");
    }
    assert!(proxy.seen().is_empty(), "the registry was asked: {:?}", proxy.seen());
    assert!(w.sim().requests().is_empty(), "the cluster was asked");
}

/// A dotenv report in a folder that does not exist yet: the folder is made, the run
/// succeeds, the report is there.
#[test]
fn missing_folders_are_made() {
    let w = World::kubesim();
    let dotenv = w.dir.path().join("reports/deploy/deploy.env");
    let results = w.dir.path().join("tekton/results");
    let output = w
        .command(&[
            ("INPUT_IMAGE", &w.image("v2")),
            ("INPUT_DEPLOYMENT", "api"),
            ("INPUT_DOTENV-FILE", dotenv.to_str().unwrap()),
            ("INPUT_RESULTS-DIR", results.to_str().unwrap()),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let report = std::fs::read_to_string(&dotenv).unwrap();
    assert!(report.contains("KUBESHIP_STATUS=succeeded\n"), "{report}");
    assert_eq!(std::fs::read_to_string(results.join("status")).unwrap(), "succeeded");
}
