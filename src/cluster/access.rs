//! What the credentials may do, asked up front with SelfSubjectAccessReviews: fail-fast and
//! the failure diagnostics need to list and watch pods, list events and read pod logs. Without
//! them kubeship still works (kubectl's verdicts need only the workloads), but the user must
//! know before a crashing pod runs into the deadline unnoticed.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use tokio::time::Instant;

use super::api::{Request, call};

/// The rules fail-fast and diagnostics use: (verb, resource, subresource).
const NEEDED: [(&str, &str, &str); 4] =
    [("list", "pods", ""), ("watch", "pods", ""), ("list", "events", ""), ("get", "pods", "log")];

/// The rules of [`NEEDED`] that the credentials lack in `namespace`, as `pods: watch`. Empty
/// when all are allowed, or when the server cannot say (the first 403 will tell then).
pub async fn missing(client: &kube::Client, namespace: &str, deadline: Instant) -> Vec<String> {
    let api = Api::<SelfSubjectAccessReview>::all(client.clone());
    let asks = NEEDED.iter().map(|&(verb, resource, subresource)| {
        let api = api.clone();
        async move {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(namespace.to_owned()),
                        verb: Some(verb.to_owned()),
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
