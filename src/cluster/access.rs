//! What the credentials may do, asked up front with SelfSubjectAccessReviews, before the
//! first write: following a rollout needs `list` and `watch` on the workload kinds (without
//! them a patch would land with no verdict to follow it, so that is an error); fail-fast and
//! the failure report need to list and watch pods, list events and read pod logs (without
//! them kubeship still gives kubectl's verdict, and says up front what the report will lack).
//! A server that cannot answer the reviews is taken to allow everything: the first 403 tells.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use tokio::time::Instant;

use super::api::{Request, call};

/// A rule: (verb, API group, resource, subresource).
pub type Rule<'a> = (&'a str, &'a str, &'a str, &'a str);

/// The rules fail-fast and the failure report use.
pub const REPORT: [Rule<'static>; 4] = [
    ("list", "", "pods", ""),
    ("watch", "", "pods", ""),
    ("list", "", "events", ""),
    ("get", "", "pods", "log"),
];

/// The rules of `rules` that the credentials lack in `namespace`, as `pods: watch`. Empty
/// when all are allowed, or when the server cannot say.
pub async fn missing(
    client: &kube::Client,
    namespace: &str,
    rules: &[Rule<'_>],
    deadline: Instant,
) -> Vec<String> {
    let api = Api::<SelfSubjectAccessReview>::all(client.clone());
    let asks = rules.iter().map(|&(verb, group, resource, subresource)| {
        let api = api.clone();
        async move {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(namespace.to_owned()),
                        verb: Some(verb.to_owned()),
                        group: Some(group.to_owned()),
                        resource: Some(resource.to_owned()),
                        subresource: (!subresource.is_empty()).then(|| subresource.to_owned()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let what = "a self-subject access review";
            let request = Request { verb: "create", resource: "selfsubjectaccessreviews", what };
            let answer = call(deadline, request, api.create(&PostParams::default(), &review)).await;
            let allowed = answer.ok().and_then(|r| r.status).is_none_or(|s| s.allowed);
            let resource = if subresource.is_empty() {
                resource.to_owned()
            } else {
                format!("{resource}/{subresource}")
            };
            (!allowed).then(|| format!("{resource}: {verb}"))
        }
    });
    futures_util::future::join_all(asks).await.into_iter().flatten().collect()
}

/// What the missing rules take away, for the warning: fail-fast needs to list and watch pods;
/// the failure report needs events and pod logs too. None when nothing that matters is missing.
pub fn warning(missing: &[String], fail_fast: bool, namespace: &str) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let pods = missing.iter().any(|m| m == "pods: list" || m == "pods: watch");
    let lost = if pods && fail_fast {
        "fail-fast and the failure report's pods, events and logs are off"
    } else if pods {
        "the failure report's pods, events and logs are off"
    } else {
        "failure reports will lack what these give (events, log lines); the verdict is the same"
    };
    Some(format!(
        "{lost}: the credentials lack {} in namespace {namespace}; add them to the Role (README, \"Permissions\")",
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each missing rule says what it takes away.
    #[test]
    fn warnings_say_what_is_lost() {
        assert_eq!(warning(&[], true, "prod"), None);
        let pods = warning(&["pods: watch".into()], true, "prod").unwrap();
        assert!(
            pods.starts_with("fail-fast and")
                && pods.contains("lack pods: watch in namespace prod"),
            "{pods}"
        );
        let logs = warning(&["pods/log: get".into()], true, "prod").unwrap();
        assert!(
            logs.contains("the verdict is the same") && logs.contains("pods/log: get"),
            "{logs}"
        );
    }
}
