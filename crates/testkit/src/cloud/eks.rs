//! An EKS token verifier that checks a token as aws-iam-authenticator does (its
//! `pkg/token/token.go` `Verify`) and then as STS would check the presigned
//! `GetCallerIdentity` it holds: the signature recomputed with the known secret and the
//! verifier's own cluster id in `x-k8s-aws-id`. Packaged as a TokenReview webhook (HTTPS,
//! `authentication.k8s.io/v1`) for a real API server's
//! `--authentication-token-webhook-config-file`, and usable directly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::json;

use super::server::{Request, Response, Server};
use super::sigv4::{Canonical, same, sha256_hex, signature, string_to_sign};
use crate::certs::ServerCerts;

/// A secret the fake STS issued or the test holds.
#[derive(Debug, Clone)]
pub struct Key {
    pub secret: String,
    pub session_token: Option<String>,
    /// The identity STS would answer for (an assumed role's ARN, a user's).
    pub arn: String,
}

/// The keys STS knows, by access key id; shared with [`super::sts::FakeSts`].
pub type Keys = Arc<Mutex<BTreeMap<String, Key>>>;

/// What a good token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub arn: String,
    pub access_key_id: String,
}

/// Checks tokens for one cluster.
#[derive(Clone)]
pub struct Verifier {
    pub cluster_id: String,
    pub keys: Keys,
}

const PARAMETERS: &[&str] = &[
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
];

impl Verifier {
    pub fn new(cluster_id: &str, keys: Keys) -> Self {
        Self { cluster_id: cluster_id.to_owned(), keys }
    }

    /// Verifies `token` at `now`.
    ///
    /// # Errors
    /// Why it is refused, in aws-iam-authenticator's or STS's terms.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Verified, String> {
        if token.len() > 4096 {
            return Err("token is too large".into());
        }
        let encoded = token
            .strip_prefix("k8s-aws-v1.")
            .ok_or("token is missing expected \"k8s-aws-v1.\" prefix")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|e| format!("input token was not properly formatted: {e}"))?;
        let url = String::from_utf8(bytes).map_err(|_| "the token's URL is not text")?;
        let rest = url.strip_prefix("https://").ok_or("unexpected scheme in pre-signed URL")?;
        let (host, path_query) = rest.split_at(rest.find('/').ok_or("no path in pre-signed URL")?);
        let region = sts_region(host)
            .ok_or_else(|| format!("unexpected hostname {host:?} in pre-signed URL"))?;
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        if path != "/" {
            return Err("unexpected path in pre-signed URL".into());
        }
        let mut params = BTreeMap::new();
        let mut raw = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()).into_owned() {
            let lower = key.to_ascii_lowercase();
            if !PARAMETERS.contains(&lower.as_str()) {
                return Err(format!("non-whitelisted query parameter {key:?}"));
            }
            if params.insert(lower, value.clone()).is_some() {
                return Err("query parameter with multiple values not supported".into());
            }
            raw.push((key, value));
        }
        let get = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
        if get("action") != "GetCallerIdentity" {
            return Err("unexpected action parameter in pre-signed URL".into());
        }
        let signed_headers: Vec<&str> = get("x-amz-signedheaders").split(';').collect();
        if !signed_headers.iter().any(|h| h.eq_ignore_ascii_case("x-k8s-aws-id")) {
            return Err("client did not sign the x-k8s-aws-id header in the pre-signed URL".into());
        }
        let expires: i64 =
            get("x-amz-expires").parse().map_err(|_| "invalid X-Amz-Expires parameter")?;
        if !(0..=900).contains(&expires) {
            return Err(format!("invalid X-Amz-Expires parameter in pre-signed URL: {expires}"));
        }
        let date = get("x-amz-date");
        let signed_at = parse_date(date).ok_or("X-Amz-Date parameter must be present and valid")?;
        if now > signed_at + Duration::from_secs(15 * 60) {
            return Err(format!("X-Amz-Date parameter is expired (15 minute expiration) {date}"));
        }
        // What STS checks of the request aws-iam-authenticator forwards.
        if signed_at > now + Duration::from_secs(5 * 60) {
            return Err("STS: Signature not yet current".into());
        }
        if get("version") != "2011-06-15" || get("x-amz-algorithm") != "AWS4-HMAC-SHA256" {
            return Err("STS: wrong Version or X-Amz-Algorithm".into());
        }
        let credential = get("x-amz-credential");
        let (access_key_id, scope) =
            credential.split_once('/').ok_or("STS: malformed X-Amz-Credential")?;
        if scope != format!("{}/{region}/sts/aws4_request", &date[..8]) {
            return Err(format!(
                "STS: credential scope {scope:?} does not match the date and {region}"
            ));
        }
        let key = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(access_key_id)
            .cloned();
        let key = key.ok_or(
            "STS: InvalidClientTokenId: the security token included in the request is invalid",
        )?;
        match (&key.session_token, params.get("x-amz-security-token")) {
            (Some(expected), Some(given)) if same(expected, given) => {}
            (None, None) => {}
            (Some(_), None) => {
                return Err("STS: the credentials have a session token the URL lacks".into());
            }
            _ => return Err("STS: the security token included in the request is invalid".into()),
        }
        let mut headers = Vec::new();
        for name in &signed_headers {
            let value = match name.to_ascii_lowercase().as_str() {
                "host" => host.to_owned(),
                // The verifier sends its own cluster id: a token for another cluster fails here.
                "x-k8s-aws-id" => self.cluster_id.clone(),
                other => return Err(format!("STS: signed header {other:?} is not sent")),
            };
            headers.push(((*name).to_owned(), value));
        }
        if !signed_headers.contains(&"host") {
            return Err("STS: host is not signed".into());
        }
        let query =
            raw.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("x-amz-signature")).collect();
        let canonical =
            Canonical { method: "GET", path: "/", query, headers, payload_hash: sha256_hex(b"") };
        let expected = signature(&key.secret, scope, &string_to_sign(&canonical, date, scope));
        if !same(&expected, get("x-amz-signature")) {
            return Err(
                "STS: SignatureDoesNotMatch: the request signature we calculated does not match"
                    .into(),
            );
        }
        Ok(Verified { arn: key.arn, access_key_id: access_key_id.to_owned() })
    }
}

/// The region a regional STS host signs for (the global host: us-east-1); `None` for any
/// other host.
fn sts_region(host: &str) -> Option<String> {
    if host == "sts.amazonaws.com" {
        return Some("us-east-1".into());
    }
    let region = host
        .strip_prefix("sts.")?
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_prefix("sts.")?.strip_suffix(".amazonaws.com.cn"))?;
    let valid = !region.is_empty()
        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    valid.then(|| region.to_owned())
}

/// `20150830T123600Z`.
fn parse_date(text: &str) -> Option<SystemTime> {
    if text.len() != 16 || !text.ends_with('Z') || text.as_bytes()[8] != b'T' {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    let seconds = chrono_free_parse(&iso)?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ` (days from the civil calendar).
fn chrono_free_parse(iso: &str) -> Option<u64> {
    let n = |range: std::ops::Range<usize>| iso.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Kubernetes users for verified identities, as an EKS access entry maps them.
#[derive(Debug, Clone, Default)]
pub struct Mappings(pub BTreeMap<String, (String, Vec<String>)>);

/// The verifier as a TokenReview webhook over HTTPS.
pub struct Webhook {
    pub server: Server,
    ca_pem: String,
}

impl Webhook {
    /// Serves TokenReviews on `/tokenreview`: a verified token whose ARN is mapped is
    /// authenticated as the mapped user and groups; anything else is not.
    pub fn start(
        verifier: Verifier,
        mappings: Mappings,
        certs: &ServerCerts,
    ) -> anyhow::Result<Self> {
        let handler = Arc::new(move |request: &Request| review(&verifier, &mappings, request));
        let server = Server::https(handler, certs)?;
        Ok(Self { server, ca_pem: std::fs::read_to_string(&certs.ca_pem)? })
    }

    /// The kubeconfig for `--authentication-token-webhook-config-file`.
    pub fn kubeconfig(&self) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: eks-verifier\n  cluster:\n    server: {}/tokenreview\n    certificate-authority-data: {ca}\n\
             users:\n- name: apiserver\n  user: {{}}\ncontexts:\n- name: webhook\n  context:\n    cluster: eks-verifier\n    user: apiserver\ncurrent-context: webhook\n",
            self.server.url
        )
    }
}

fn review(verifier: &Verifier, mappings: &Mappings, request: &Request) -> Response {
    let Some(body) = request.json().filter(|b| b["kind"] == "TokenReview") else {
        return Response::json(400, &json!({"message": "not a TokenReview"}));
    };
    let api_version = body["apiVersion"].as_str().unwrap_or("authentication.k8s.io/v1").to_owned();
    let token = body["spec"]["token"].as_str().unwrap_or_default();
    let status = match verifier.verify(token, SystemTime::now()) {
        Ok(verified) => match mappings.0.get(&canonical_arn(&verified.arn)) {
            Some((username, groups)) => json!({"authenticated": true, "user": {
                "username": username, "uid": format!("aws-iam-authenticator:{}", verified.arn),
                "groups": groups, "extra": {"arn": [verified.arn], "accessKeyId": [verified.access_key_id]}}}),
            None => {
                json!({"authenticated": false, "error": format!("ARN is not mapped: {}", verified.arn)})
            }
        },
        Err(e) => json!({"authenticated": false, "error": e}),
    };
    Response::json(
        200,
        &json!({"apiVersion": api_version, "kind": "TokenReview", "status": status}),
    )
}

/// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION` → `arn:aws:iam::ACCOUNT:role/NAME`, as
/// aws-iam-authenticator canonicalizes before looking up a mapping.
pub fn canonical_arn(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        [_, partition, "sts", "", account, resource] if resource.starts_with("assumed-role/") => {
            let role = resource.split('/').nth(1).unwrap_or_default();
            format!("arn:{partition}:iam::{account}:role/{role}")
        }
        _ => arn.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_hosts() {
        assert_eq!(chrono_free_parse("2015-08-30T12:36:00Z"), Some(1_440_938_160));
        assert_eq!(
            parse_date("20150830T123600Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160))
        );
        assert_eq!(sts_region("sts.eu-west-1.amazonaws.com").as_deref(), Some("eu-west-1"));
        assert_eq!(sts_region("sts.amazonaws.com").as_deref(), Some("us-east-1"));
        assert_eq!(sts_region("sts.evil.com"), None);
        assert_eq!(sts_region("127.0.0.1:8080"), None);
        assert_eq!(
            canonical_arn("arn:aws:sts::123456789012:assumed-role/deploy/kubeship"),
            "arn:aws:iam::123456789012:role/deploy"
        );
    }
}
