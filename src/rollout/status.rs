//! kubectl's rollout verdicts (`kubectl/pkg/polymorphichelpers/rollout_status.go`), word for
//! word, as pure functions over the workload objects, plus the pin to this run's change:
//! a status only counts once `observedGeneration` reaches the generation our patch produced
//! (kubectl compares against the object's current generation, which a later writer may move).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not done; kubectl's waiting message.
    Waiting(String),
    /// Done; kubectl's success message.
    Done(String),
    /// Failed; kubectl's error message.
    Failed(String),
}

/// Where the Deployment controller records a rollout's revision.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// A Deployment that will not progress however long kubectl waits: paused, or unable to
/// create its pods (`ReplicaFailure`, from quota or an admission webhook).
pub fn deployment_stuck(d: &Deployment, generation: i64) -> Option<String> {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    if d.spec.paused == Some(true) {
        return Some(format!(
            "deployment \"{name}\" is paused, so the new pods will not roll out: resume it \
             (kubectl rollout resume deployment/{name}) and run again"
        ));
    }
    let status = d.status.as_ref()?;
    if status.observed_generation.unwrap_or(0) < generation {
        return None;
    }
    let failure = status.conditions.iter().flatten().find(|c| {
        c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
    })?;
    Some(format!(
        "deployment \"{name}\" cannot create its pods ({}): {}",
        crate::untrusted::short(failure.reason.as_deref().unwrap_or("ReplicaFailure"), 80),
        crate::untrusted::line(failure.message.as_deref().unwrap_or_default())
    ))
}

/// `DeploymentStatusViewer.Status`, with `generation` the one our patch produced.
pub fn deployment(d: &Deployment, generation: i64) -> Verdict {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < generation {
        return Verdict::Waiting("Waiting for deployment spec update to be observed...".into());
    }
    let timed_out = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    if timed_out {
        return Verdict::Failed(format!("deployment \"{name}\" exceeded its progress deadline"));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if let Some(wanted) = d.spec.replicas
        && updated < wanted
    {
        return Verdict::Waiting(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {updated} out of {wanted} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return Verdict::Waiting(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return Verdict::Waiting(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    Verdict::Done(format!("deployment \"{name}\" successfully rolled out"))
}

/// `StatefulSetStatusViewer.Status`, with `generation` the one our patch produced.
/// OnDelete is not followed (kubeship reports it as applied before getting here).
pub fn statefulset(s: &StatefulSet, generation: i64) -> Verdict {
    let spec = s.spec.clone();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return Verdict::Failed(
            "rollout status is only available for RollingUpdate strategy type".into(),
        );
    }
    let status = s.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || observed < generation {
        return Verdict::Waiting("Waiting for statefulset spec update to be observed...".into());
    }
    let ready = status.ready_replicas.unwrap_or(0);
    if let Some(wanted) = spec.replicas
        && ready < wanted
    {
        return Verdict::Waiting(format!("Waiting for {} pods to be ready...", wanted - ready));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    if let Some(rolling) = strategy.rolling_update {
        if let (Some(replicas), Some(partition)) = (spec.replicas, rolling.partition)
            && updated < replicas - partition
        {
            return Verdict::Waiting(format!(
                "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                replicas - partition
            ));
        }
        return Verdict::Done(format!(
            "partitioned roll out complete: {updated} new pods have been updated..."
        ));
    }
    let update_revision = status.update_revision.unwrap_or_default();
    if Some(&update_revision) != status.current_revision.as_ref() {
        return Verdict::Waiting(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}..."
        ));
    }
    Verdict::Done(format!(
        "statefulset rolling update complete {} pods at revision {update_revision}...",
        status.current_replicas.unwrap_or(0)
    ))
}

/// `DaemonSetStatusViewer.Status`, with `generation` the one our patch produced.
pub fn daemonset(d: &DaemonSet, generation: i64) -> Verdict {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let strategy = d.spec.update_strategy.as_ref().and_then(|u| u.type_.clone());
    if strategy.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return Verdict::Failed(
            "rollout status is only available for RollingUpdate strategy type".into(),
        );
    }
    let status = d.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < generation {
        return Verdict::Waiting("Waiting for daemon set spec update to be observed...".into());
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    if updated < desired {
        return Verdict::Waiting(format!(
            "Waiting for daemon set \"{name}\" rollout to finish: {updated} out of {desired} new pods have been updated..."
        ));
    }
    let available = status.number_available.unwrap_or(0);
    if available < desired {
        return Verdict::Waiting(format!(
            "Waiting for daemon set \"{name}\" rollout to finish: {available} of {desired} updated pods are available..."
        ));
    }
    Verdict::Done(format!("daemon set \"{name}\" successfully rolled out"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_json::from_value(serde_json::from_str::<serde_json::Value>(yaml).unwrap_or_else(
            |_| {
                // The fixtures are JSON written compactly; keep one format.
                panic!("fixture is not JSON: {yaml}")
            },
        ))
        .expect("fixture decodes")
    }

    fn deploy(generation: i64, replicas: i32, status: &str) -> Deployment {
        from_yaml(&format!(
            r#"{{"metadata": {{"name": "foo", "generation": {generation}}}, "spec": {{"replicas": {replicas},
            "selector": {{}}, "template": {{}}}}, "status": {status}}}"#
        ))
    }

    /// kubectl's own table (`TestDeploymentStatusViewerStatus`), our generation being the
    /// object's.
    #[test]
    fn kubectl_deployment_cases() {
        let cases = [
            (r#"{"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0, "availableReplicas": 1}"#,
                Verdict::Waiting("Waiting for deployment \"foo\" rollout to finish: 0 out of 1 new replicas have been updated...".into())),
            (r#"{"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1}"#,
                Verdict::Waiting("Waiting for deployment \"foo\" rollout to finish: 1 old replicas are pending termination...".into())),
            (r#"{"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 0}"#,
                Verdict::Waiting("Waiting for deployment \"foo\" rollout to finish: 0 of 1 updated replicas are available...".into())),
            (r#"{"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}"#,
                Verdict::Done("deployment \"foo\" successfully rolled out".into())),
            (r#"{"observedGeneration": 0, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}"#,
                Verdict::Waiting("Waiting for deployment spec update to be observed...".into())),
        ];
        for (status, want) in cases {
            assert_eq!(deployment(&deploy(1, 1, status), 1), want, "{status}");
        }
    }

    /// A stale NewReplicaSetAvailable and full counters before the controller has seen our
    /// generation are not success (the bug of kube's is_deployment_completed).
    #[test]
    fn stale_status_before_our_generation_is_not_done() {
        let d = deploy(
            2,
            1,
            r#"{"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}"#,
        );
        assert_eq!(
            deployment(&d, 2),
            Verdict::Waiting("Waiting for deployment spec update to be observed...".into())
        );
        // A later writer moved generation to 3; our change (2) is observed and complete.
        let d = deploy(
            3,
            1,
            r#"{"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}"#,
        );
        assert!(matches!(deployment(&d, 2), Verdict::Done(_)));
    }

    /// The deadline is only read once our generation is observed; its status is not checked.
    #[test]
    fn progress_deadline() {
        let status = r#"{"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}"#;
        assert_eq!(
            deployment(&deploy(2, 1, status), 2),
            Verdict::Failed("deployment \"foo\" exceeded its progress deadline".into())
        );
        assert!(matches!(deployment(&deploy(3, 1, status), 3), Verdict::Waiting(_)));
    }

    fn sts(status: &str, strategy: &str) -> StatefulSet {
        from_yaml(&format!(
            r#"{{"metadata": {{"name": "db", "generation": 1}}, "spec": {{"replicas": 3, "selector": {{}}, "serviceName": "db",
            "template": {{}}, "updateStrategy": {strategy}}}, "status": {status}}}"#
        ))
    }

    /// kubectl's StatefulSet cases: partitions, revisions, OnDelete.
    #[test]
    fn kubectl_statefulset_cases() {
        let rolling = r#"{"type": "RollingUpdate"}"#;
        let partitioned = r#"{"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}"#;
        let cases = [
            (r#"{"observedGeneration": 1, "replicas": 3, "readyReplicas": 2}"#, rolling,
                Verdict::Waiting("Waiting for 1 pods to be ready...".into())),
            (r#"{"observedGeneration": 0, "replicas": 3, "readyReplicas": 3}"#, rolling,
                Verdict::Waiting("Waiting for statefulset spec update to be observed...".into())),
            (r#"{"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 0}"#, partitioned,
                Verdict::Waiting("Waiting for partitioned roll out to finish: 0 out of 1 new pods have been updated...".into())),
            (r#"{"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1}"#, partitioned,
                Verdict::Done("partitioned roll out complete: 1 new pods have been updated...".into())),
            (r#"{"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 2, "currentRevision": "a", "updateRevision": "b"}"#, rolling,
                Verdict::Waiting("waiting for statefulset rolling update to complete 2 pods at revision b...".into())),
            (r#"{"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "currentReplicas": 3, "currentRevision": "b", "updateRevision": "b"}"#, rolling,
                Verdict::Done("statefulset rolling update complete 3 pods at revision b...".into())),
            ("{}", r#"{"type": "OnDelete"}"#,
                Verdict::Failed("rollout status is only available for RollingUpdate strategy type".into())),
        ];
        for (status, strategy, want) in cases {
            assert_eq!(statefulset(&sts(status, strategy), 1), want, "{status} {strategy}");
        }
    }

    /// kubectl's DaemonSet cases.
    #[test]
    fn kubectl_daemonset_cases() {
        let ds = |status: &str| -> DaemonSet {
            from_yaml(&format!(
                r#"{{"metadata": {{"name": "agent", "generation": 1}}, "spec": {{"selector": {{}}, "template": {{}}}}, "status": {status}}}"#
            ))
        };
        let cases = [
            (r#"{"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 0, "numberReady": 1, "updatedNumberScheduled": 1}"#,
                Verdict::Waiting("Waiting for daemon set \"agent\" rollout to finish: 1 out of 2 new pods have been updated...".into())),
            (r#"{"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 0, "numberReady": 2, "updatedNumberScheduled": 2, "numberAvailable": 1}"#,
                Verdict::Waiting("Waiting for daemon set \"agent\" rollout to finish: 1 of 2 updated pods are available...".into())),
            (r#"{"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 0, "numberReady": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}"#,
                Verdict::Done("daemon set \"agent\" successfully rolled out".into())),
            (r#"{"observedGeneration": 0, "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 0, "numberReady": 2}"#,
                Verdict::Waiting("Waiting for daemon set spec update to be observed...".into())),
        ];
        for (status, want) in cases {
            assert_eq!(daemonset(&ds(status), 1), want, "{status}");
        }
    }
}
