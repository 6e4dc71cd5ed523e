//! A container's log as the kubelet serves it: the scripted lines of the instance running now
//! (or of the last one that exited, with `previous`), with the kubelet's refusals.

use serde_json::Value;

use super::Kubelet;

/// What a log request asks for.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub container: Option<String>,
    pub previous: bool,
    pub tail_lines: Option<usize>,
}

impl Kubelet {
    /// The log text of a container of `pod`, or the message of a 400 Bad Request.
    pub fn container_logs(&self, pod: &Value, query: &LogQuery) -> Result<String, String> {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let containers: Vec<&Value> =
            pod["spec"]["containers"].as_array().into_iter().flatten().collect();
        let container = match &query.container {
            Some(c) => containers
                .iter()
                .find(|x| x["name"] == c.as_str())
                .copied()
                .ok_or_else(|| format!("container {c} is not valid for pod {name}"))?,
            None if containers.len() == 1 => containers[0],
            None => {
                let names: Vec<&str> =
                    containers.iter().map(|c| c["name"].as_str().unwrap_or_default()).collect();
                return Err(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                ));
            }
        };
        let cname = container["name"].as_str().unwrap_or_default();
        let image = container["image"].as_str().unwrap_or_default();
        let status = pod["status"]["containerStatuses"]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["name"] == cname));
        if query.previous && status.is_none_or(|s| s["lastState"]["terminated"].is_null()) {
            return Err(format!(
                "previous terminated container \"{cname}\" in pod \"{name}\" not found"
            ));
        }
        // A container between restarts still has the logs of its last run.
        let never_ran = |s: &Value| {
            s["state"]["running"].is_null()
                && s["state"]["terminated"].is_null()
                && s["lastState"]["terminated"].is_null()
        };
        if !query.previous && status.is_none_or(never_ran) {
            let reason = status
                .and_then(|s| s["state"]["waiting"]["reason"].as_str())
                .unwrap_or("ContainerCreating");
            return Err(format!(
                "container \"{cname}\" in pod \"{name}\" is waiting to start: {reason}"
            ));
        }
        let lines = self.log_lines(pod, image);
        let tail = query.tail_lines.unwrap_or(lines.len());
        let start = lines.len().saturating_sub(tail);
        Ok(lines[start..].iter().map(|l| format!("{l}\n")).collect())
    }
}
