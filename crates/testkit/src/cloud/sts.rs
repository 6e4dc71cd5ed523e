//! AWS STS's Query API and EKS `DescribeCluster`, on loopback, checking what they receive:
//!
//! - `POST /` `Action=AssumeRoleWithWebIdentity` (form): `Version`, a known `RoleArn`, a valid
//!   `RoleSessionName`, a `WebIdentityToken` the trusted [`Issuer`] signed for audience
//!   `sts.amazonaws.com`. Unsigned, as AWS documents it.
//! - `POST /` `Action=AssumeRole`: SigV4-signed (service `sts`) by known keys, checked with the
//!   test kit's own SigV4; the caller must be allowed to assume the role.
//! - `GET /clusters/<name>`: SigV4-signed for service `eks`; the cluster's endpoint and CA.
//!
//! Answers are AWS's documented XML (JSON for EKS), errors too. Issued credentials join the
//! shared [`Keys`], so the EKS verifier knows them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::json;

use super::eks::{Key, Keys};
use super::oidc::Issuer;
use super::server::{Request, Response, Server};
use super::sigv4::{Canonical, same, sha256_hex, signature, string_to_sign};

/// What the fake STS accepts.
#[derive(Clone)]
pub struct Config {
    /// Roles that may be assumed: role ARN → the principals (ARNs) allowed to `AssumeRole` it
    /// (web identity is allowed for every role listed).
    pub roles: BTreeMap<String, Vec<String>>,
    pub issuer: Option<Issuer>,
    /// Lifetime of issued credentials.
    pub lifetime: Duration,
    /// EKS clusters: name → (endpoint URL, CA PEM).
    pub clusters: BTreeMap<String, (String, String)>,
}

pub struct FakeSts {
    pub server: Server,
    pub keys: Keys,
    pub config: Arc<Mutex<Config>>,
    issued: Arc<AtomicUsize>,
}

fn error(status: u16, code: &str, message: &str) -> Response {
    Response::xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>Sender</Type>\n    \
             <Code>{code}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n</ErrorResponse>\n",
            message.replace('&', "&amp;").replace('<', "&lt;")
        ),
    )
}

impl FakeSts {
    /// Serves over plain HTTP, or HTTPS with `tls` (for `AWS_CA_BUNDLE`).
    pub fn start(
        config: Config,
        keys: Keys,
        tls: Option<&crate::certs::ServerCerts>,
    ) -> anyhow::Result<Self> {
        let config = Arc::new(Mutex::new(config));
        let issued = Arc::new(AtomicUsize::new(0));
        let (c, k, n) = (config.clone(), keys.clone(), issued.clone());
        let handler = Arc::new(move |r: &Request| {
            let config = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            handle(r, &config, &k, &n)
        });
        let server = match tls {
            Some(certs) => Server::https(handler, certs)?,
            None => Server::http(handler)?,
        };
        Ok(Self { server, keys, config, issued })
    }

    /// Adds long-lived keys (what configure-aws-credentials exports for an IAM user).
    pub fn add_key(&self, access_key_id: &str, key: Key) {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(access_key_id.into(), key);
    }

    /// Sets of credentials issued so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// The `Action`s received, in order.
    pub fn actions(&self) -> Vec<String> {
        self.server.requests().iter().filter_map(|r| r.form().get("Action").cloned()).collect()
    }
}

fn handle(r: &Request, config: &Config, keys: &Keys, issued: &AtomicUsize) -> Response {
    if r.method == "GET" && r.path.starts_with("/clusters/") {
        return describe(r, config, keys);
    }
    if r.method != "POST" || r.path != "/" {
        return error(404, "UnknownOperation", "not found");
    }
    if !r.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        return error(400, "InvalidParameterValue", "the body must be form-encoded");
    }
    let form = r.form();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("Version") != "2011-06-15" {
        return error(400, "InvalidParameterValue", "Version must be 2011-06-15");
    }
    let role = get("RoleArn");
    let session = get("RoleSessionName");
    let valid_session = (2..=64).contains(&session.len())
        && session.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
    if !valid_session {
        return error(400, "ValidationError", "RoleSessionName must match [\\w+=,.@-]{2,64}");
    }
    let Some(allowed) = config.roles.get(role) else {
        return error(
            403,
            "AccessDenied",
            &format!("Not authorized to perform sts:{} on {role}", get("Action")),
        );
    };
    match get("Action") {
        "AssumeRoleWithWebIdentity" => {
            if r.header("authorization").is_some() {
                return error(400, "InvalidAction", "AssumeRoleWithWebIdentity is not signed");
            }
            let Some(issuer) = &config.issuer else {
                return error(
                    400,
                    "InvalidIdentityToken",
                    "No OpenIDConnect provider found in your account",
                );
            };
            if let Err(e) = issuer.verify(get("WebIdentityToken"), "sts.amazonaws.com") {
                return error(
                    400,
                    "InvalidIdentityToken",
                    &format!("Couldn't verify the token: {e}"),
                );
            }
        }
        "AssumeRole" => match verify_signed(r, keys, "sts") {
            Ok(caller) if allowed.contains(&caller.arn) => {}
            Ok(caller) => {
                return error(
                    403,
                    "AccessDenied",
                    &format!(
                        "User: {} is not authorized to perform: sts:AssumeRole on resource: {role}",
                        caller.arn
                    ),
                );
            }
            Err(e) => return error(403, "SignatureDoesNotMatch", &e),
        },
        other => return error(400, "InvalidAction", &format!("Could not find operation {other}")),
    }
    let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
    let access_key_id = format!("ASIATEST{n:08}");
    // Characters that break naive encoding: a token must survive `+`, `/` and `=`.
    let secret = format!("s3cr3t+/key={n:04}XXXXXXXXXXXXXXXXXXXXXXXX");
    let token = format!("FwoGZXIvYXdzE+session/token={n:04}{}", "Q".repeat(300));
    let account = role.split(':').nth(4).unwrap_or("123456789012");
    let name = role.rsplit('/').next().unwrap_or("role");
    let arn = format!("arn:aws:sts::{account}:assumed-role/{name}/{session}");
    keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(
        access_key_id.clone(),
        Key { secret: secret.clone(), session_token: Some(token.clone()), arn: arn.clone() },
    );
    let expiration = iso8601(SystemTime::now() + config.lifetime);
    let action = get("Action");
    Response::xml(
        200,
        format!(
            "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <{action}Result>\n    \
             <AssumedRoleUser>\n      <Arn>{arn}</Arn>\n      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:{session}</AssumedRoleId>\n    </AssumedRoleUser>\n    \
             <Credentials>\n      <AccessKeyId>{access_key_id}</AccessKeyId>\n      <SecretAccessKey>{secret}</SecretAccessKey>\n      \
             <SessionToken>{token}</SessionToken>\n      <Expiration>{expiration}</Expiration>\n    </Credentials>\n  </{action}Result>\n  \
             <ResponseMetadata>\n    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n"
        ),
    )
}

/// EKS `DescribeCluster`.
fn describe(r: &Request, config: &Config, keys: &Keys) -> Response {
    if let Err(e) = verify_signed(r, keys, "eks") {
        return Response::json(403, &json!({"message": e}));
    }
    let name = r.path.trim_start_matches("/clusters/");
    match config.clusters.get(name) {
        Some((endpoint, ca)) => Response::json(
            200,
            &json!({"cluster": {
            "name": name, "arn": format!("arn:aws:eks:us-west-2:123456789012:cluster/{name}"),
            "endpoint": endpoint, "status": "ACTIVE", "version": "1.33",
            "certificateAuthority": {"data": base64::engine::general_purpose::STANDARD.encode(ca)},
            "accessConfig": {"authenticationMode": "API_AND_CONFIG_MAP"}}}),
        ),
        None => {
            Response::json(404, &json!({"message": format!("No cluster found for name: {name}.")}))
        }
    }
}

/// Checks a header-signed request: `Authorization` with a known key, `x-amz-date` within
/// 5 minutes, `host` and `x-amz-date` signed, the session token when the key has one, the
/// body's hash, and the signature. Returns the caller's key.
pub fn verify_signed(r: &Request, keys: &Keys, service: &str) -> Result<Key, String> {
    let authorization = r.header("authorization").ok_or("Missing Authentication Token")?;
    let fields = authorization.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not SigV4")?;
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_default()
    };
    let (access_key_id, scope) =
        field("Credential").split_once('/').ok_or("malformed Credential")?;
    let date = r.header("x-amz-date").ok_or("x-amz-date is missing")?;
    if !scope.starts_with(&date[..8.min(date.len())])
        || !scope.ends_with(&format!("/{service}/aws4_request"))
    {
        return Err(format!("credential scope {scope:?} does not fit {date} and {service}"));
    }
    let key =
        keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(access_key_id).cloned();
    let key = key.ok_or("The security token included in the request is invalid")?;
    if key.session_token.as_deref() != r.header("x-amz-security-token") {
        return Err("The security token included in the request is invalid".into());
    }
    let signed: Vec<&str> = field("SignedHeaders").split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
        return Err("host and x-amz-date must be signed".into());
    }
    let headers = signed
        .iter()
        .map(|n| {
            r.header(n)
                .map(|v| ((*n).to_owned(), v.to_owned()))
                .ok_or(format!("signed header {n} is not sent"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let query = form_urlencoded::parse(r.query.as_bytes()).into_owned().collect();
    let canonical = Canonical {
        method: &r.method,
        path: &r.path,
        query,
        headers,
        payload_hash: sha256_hex(&r.body),
    };
    let expected = signature(&key.secret, scope, &string_to_sign(&canonical, date, scope));
    if !same(&expected, field("Signature")) {
        return Err(
            "The request signature we calculated does not match the signature you provided".into(),
        );
    }
    Ok(key)
}

/// `2011-07-15T23:28:33Z`.
pub fn iso8601(time: SystemTime) -> String {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(
            iso8601(SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)),
            "2015-08-30T12:36:00Z"
        );
    }
}
