//! Error responses exactly as the API server writes them: `Status` objects
//! (`k8s.io/apimachinery/pkg/api/errors`), and the plain-text 429 of priority and fairness.

use serde_json::{Value, json};

use crate::resources::Resource;

/// An error response: HTTP status, body, and extra headers.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub body: Body,
    pub headers: Vec<(&'static str, String)>,
}

/// A Status JSON object, or plain text (API priority and fairness writes plain text).
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Status(Value),
    Text(String),
}

fn status(code: u16, reason: &str, message: String, details: Option<Value>) -> ApiError {
    let mut object = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    if let Some(details) = details {
        object["details"] = details;
    }
    ApiError { code, body: Body::Status(object), headers: Vec::new() }
}

fn details(resource: &Resource, name: &str) -> Value {
    json!({"name": name, "group": resource.group, "kind": resource.plural})
}

/// 404 `deployments.apps "x" not found`.
pub fn not_found(resource: &Resource, name: &str) -> ApiError {
    status(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", resource.qualified()),
        Some(details(resource, name)),
    )
}

/// 404 for a path the server does not serve.
pub fn no_route(path: &str) -> ApiError {
    status(
        404,
        "NotFound",
        format!("the server could not find the requested resource ({path})"),
        Some(json!({})),
    )
}

/// 409 AlreadyExists.
pub fn already_exists(resource: &Resource, name: &str) -> ApiError {
    status(
        409,
        "AlreadyExists",
        format!("{} \"{name}\" already exists", resource.qualified()),
        Some(details(resource, name)),
    )
}

/// 409 Conflict from a resourceVersion precondition.
pub fn conflict(resource: &Resource, name: &str) -> ApiError {
    status(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            resource.qualified()
        ),
        Some(details(resource, name)),
    )
}

/// 422 Invalid with field causes.
pub fn invalid(resource: &Resource, name: &str, causes: &[(&str, &str, String)]) -> ApiError {
    let aggregate =
        causes.iter().map(|(_, field, message)| format!("{field}: {message}")).collect::<Vec<_>>();
    let aggregate = if aggregate.len() == 1 {
        aggregate[0].clone()
    } else {
        format!("[{}]", aggregate.join(", "))
    };
    let causes: Vec<Value> = causes
        .iter()
        .map(|(reason, field, message)| json!({"reason": reason, "message": message, "field": field}))
        .collect();
    status(
        422,
        "Invalid",
        format!("{} \"{name}\" is invalid: {aggregate}", resource.qualified_kind()),
        Some(
            json!({"name": name, "group": resource.group, "kind": resource.kind, "causes": causes}),
        ),
    )
}

/// 422 for a failed JSON patch operation (`NewGenericServerResponse`).
pub fn unprocessable(message: String) -> ApiError {
    status(422, "Invalid", message, None)
}

/// 400 BadRequest.
pub fn bad_request(message: String) -> ApiError {
    status(400, "BadRequest", message, None)
}

/// 415 for a patch content type the server does not take.
pub fn unsupported_media_type(content_type: &str) -> ApiError {
    status(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json ({content_type})"
        ),
        None,
    )
}

/// 415 for a request body in a format the server does not read.
pub fn unsupported_body(content_type: &str) -> ApiError {
    status(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({content_type})"
        ),
        None,
    )
}

/// 403 in RBAC's words.
pub fn forbidden(
    resource: &Resource,
    verb: &str,
    name: Option<&str>,
    namespace: Option<&str>,
    user: &str,
) -> ApiError {
    let object = match name {
        Some(name) => format!("{} \"{name}\"", resource.qualified()),
        None => resource.qualified(),
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    let group = if resource.group.is_empty() {
        "\"\"".to_owned()
    } else {
        format!("\"{}\"", resource.group)
    };
    let mut error = status(
        403,
        "Forbidden",
        format!(
            "{object} is forbidden: User \"{user}\" cannot {verb} resource \"{}\" in API group {group} {scope}",
            resource.plural
        ),
        Some(
            json!({"name": name.unwrap_or_default(), "group": resource.group, "kind": resource.plural}),
        ),
    );
    error.headers.push(("X-Content-Type-Options", "nosniff".into()));
    error
}

/// 401 without (valid) credentials.
pub fn unauthorized() -> ApiError {
    status(401, "Unauthorized", "Unauthorized".into(), None)
}

/// 410 Expired, as an in-stream watch ERROR or a response.
pub fn expired(requested: u64, oldest: u64) -> ApiError {
    status(410, "Expired", format!("too old resource version: {requested} ({oldest})"), None)
}

/// 429 as a Status with `retryAfterSeconds` (and the header the response writer adds).
pub fn too_many_requests(retry_after: u64) -> ApiError {
    let mut error = status(
        429,
        "TooManyRequests",
        "The server has received too many requests and has asked us to try again later".into(),
        Some(json!({"retryAfterSeconds": retry_after})),
    );
    error.headers.push(("Retry-After", retry_after.to_string()));
    error
}

/// 429 from API priority and fairness: plain text, not a Status.
pub fn too_many_requests_text(retry_after: u64) -> ApiError {
    ApiError {
        code: 429,
        body: Body::Text("Too many requests, please try again later.\n".into()),
        headers: vec![("Retry-After", retry_after.to_string())],
    }
}

/// 500 InternalError.
pub fn internal(message: String) -> ApiError {
    status(
        500,
        "InternalError",
        format!("Internal error occurred: {message}"),
        Some(json!({"causes": [{"message": message}]})),
    )
}

/// An admission webhook's refusal, in the API server's words: 500 when calling it failed
/// (`failurePolicy: Fail`), else its denial with the code it chose.
pub fn admission(code: u16, webhook: &str) -> ApiError {
    if code >= 500 {
        return internal(format!(
            "failed calling webhook \"{webhook}\": failed to call webhook: Post \"https://{webhook}/validate\": context deadline exceeded"
        ));
    }
    status(
        code,
        "Forbidden",
        format!("admission webhook \"{webhook}\" denied the request: this change is not allowed"),
        None,
    )
}

/// 422 for invalid PatchOptions (`ValidatePatchOptions`).
pub fn invalid_options(field: &str, message: &str) -> ApiError {
    status(
        422,
        "Invalid",
        format!("PatchOptions.meta.k8s.io \"\" is invalid: {field}: {message}"),
        Some(
            json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"field": field, "message": message}]}),
        ),
    )
}

/// 405 for a verb the resource does not take.
pub fn method_not_allowed(verb: &str) -> ApiError {
    status(
        405,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource ({verb})"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::DEPLOYMENTS;

    /// The NotFound message and details of the real server.
    #[test]
    fn not_found_shape() {
        let e = not_found(&DEPLOYMENTS, "app");
        let Body::Status(body) = e.body else { panic!("status") };
        assert_eq!(body["message"], "deployments.apps \"app\" not found");
        assert_eq!(body["details"], json!({"name": "app", "group": "apps", "kind": "deployments"}));
        assert_eq!(e.code, 404);
    }

    /// RBAC wording, namespaced.
    #[test]
    fn forbidden_wording() {
        let e = forbidden(
            &DEPLOYMENTS,
            "patch",
            Some("app"),
            Some("prod"),
            "system:serviceaccount:ci:deployer",
        );
        let Body::Status(body) = e.body else { panic!("status") };
        assert_eq!(
            body["message"],
            "deployments.apps \"app\" is forbidden: User \"system:serviceaccount:ci:deployer\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"prod\""
        );
    }
}
