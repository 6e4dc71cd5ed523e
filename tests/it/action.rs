//! action.yml, the README and the contract agree with the inputs kubeship reads and the
//! outputs it writes: one declared list (`INPUTS`, `Report::outputs`) checked everywhere.

use std::collections::BTreeMap;

use kubeship::inputs::INPUTS;
use serde::Deserialize;

#[derive(Deserialize)]
struct Action {
    inputs: BTreeMap<String, ActionInput>,
    outputs: BTreeMap<String, ActionOutput>,
    runs: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionInput {
    description: String,
    required: bool,
    default: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionOutput {
    description: String,
}

fn root(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn output_names() -> Vec<&'static str> {
    kubeship::report::Report::default().outputs().into_iter().map(|(n, _)| n).collect()
}

/// The first column of every row of the Markdown table whose header starts with `header`:
/// each backticked name in it (a row may hold two, as `registry-username`, `registry-password`).
fn table(markdown: &str, header: &str) -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    let mut lines = markdown.lines().skip_while(|l| !l.starts_with(header)).skip(2);
    for line in lines.by_ref().take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        for name in cells[1].split(',').map(|n| n.trim().trim_matches('`')) {
            rows.insert(name.to_owned(), cells[2].trim_matches('`').to_owned());
        }
    }
    rows
}

/// Every input kubeship reads is declared in action.yml with its default, required flag and
/// description, and nothing else is; every output it writes is declared.
#[test]
fn action_yml_declares_every_input_and_output() {
    let action: Action = serde_saphyr::from_str(&root("action.yml")).unwrap();
    let declared: Vec<&String> = action.inputs.keys().collect();
    let mut ours: Vec<&str> = INPUTS.iter().map(|i| i.name).collect();
    ours.sort_unstable();
    assert_eq!(declared, ours);
    for spec in INPUTS {
        let input = &action.inputs[spec.name];
        assert_eq!(input.description, spec.description, "{}", spec.name);
        assert_eq!(input.required, spec.required, "{}", spec.name);
        assert_eq!(input.default.as_deref().unwrap_or(""), spec.default, "{}", spec.name);
    }
    let mut outputs = output_names();
    outputs.sort_unstable();
    assert_eq!(action.outputs.keys().collect::<Vec<_>>(), outputs);
    assert!(action.outputs.values().all(|o| !o.description.is_empty()));
    assert_eq!(action.runs["using"], "docker");
    assert_eq!(action.runs["image"], "Dockerfile");
}

/// The README's tables list every input with its default, and every output.
#[test]
fn readme_tables_match() {
    let readme = root("README.md");
    let mut inputs = table(&readme, "| input |");
    inputs.extend(table(&readme, "| cloud input |"));
    assert_eq!(inputs.len(), INPUTS.len(), "{inputs:?}");
    for spec in INPUTS {
        let default = if spec.required { "required" } else { spec.default };
        assert_eq!(inputs.get(spec.name).map(String::as_str), Some(default), "{}", spec.name);
    }
    let outputs = table(&readme, "| output |");
    let mut names: Vec<&str> = outputs.keys().map(String::as_str).collect();
    let mut ours = output_names();
    names.sort_unstable();
    ours.sort_unstable();
    assert_eq!(names, ours);
}

/// The contract's tables, where the contract sits beside the repository (it is the team's
/// shared page, not part of a checkout): the same inputs, defaults and outputs. An input the
/// contract lacks must be one the README documents as an addition (its "cloud input" table).
#[test]
fn contract_tables_match() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/contract.md");
    let Ok(contract) = std::fs::read_to_string(&path) else {
        eprintln!("{} is not here; the README and action.yml tests still run", path.display());
        return;
    };
    let inputs = table(&contract, "| input |");
    let additions = table(&root("README.md"), "| cloud input |");
    for spec in INPUTS {
        let default = if spec.required { "required" } else { spec.default };
        let documented = inputs.get(spec.name).or_else(|| additions.get(spec.name));
        assert_eq!(documented.map(String::as_str), Some(default), "{}", spec.name);
    }
    // Every input of the contract is read, and no addition shadows one of the contract.
    assert!(inputs.keys().all(|name| INPUTS.iter().any(|s| s.name == name)), "{inputs:?}");
    assert!(additions.keys().all(|name| !inputs.contains_key(name)), "{additions:?}");
    let outputs = table(&contract, "| output |");
    assert_eq!(outputs.len(), output_names().len());
    assert!(output_names().iter().all(|n| outputs.contains_key(*n)));
}
