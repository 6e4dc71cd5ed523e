//! EKS `DescribeCluster` (`GET /clusters/<name>`, SigV4 for service `eks`): the endpoint and
//! CA of the `cluster` input `eks:<region>/<name>`. `AWS_ENDPOINT_URL_EKS`, else
//! `AWS_ENDPOINT_URL`, moves the call, as in the AWS SDKs.

use std::time::SystemTime;

use base64::Engine as _;
use serde::Deserialize;

use super::{Chain, sign};
use crate::cluster::cloud::http::{endpoint, untrusted};
use crate::cluster::cloud::{Env, Error, Located};

#[derive(Deserialize)]
struct Answer {
    cluster: Cluster,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cluster {
    endpoint: Option<String>,
    certificate_authority: Option<Authority>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct Authority {
    data: Option<String>,
}

#[derive(Deserialize)]
struct Failure {
    message: Option<String>,
}

/// The API server's URL and CA (PEM) of EKS cluster `name` in `region`.
///
/// # Errors
/// The chain's errors, EKS's refusal, an answer without endpoint or CA.
pub async fn describe(
    chain: &Chain,
    env: &Env,
    region: &str,
    name: &str,
) -> Result<Located, Error> {
    let (variable, base) = match (env.get("AWS_ENDPOINT_URL_EKS"), env.get("AWS_ENDPOINT_URL")) {
        (Some(url), _) => ("AWS_ENDPOINT_URL_EKS", url.to_owned()),
        (None, Some(url)) => ("AWS_ENDPOINT_URL", url.to_owned()),
        (None, None) => {
            let domain =
                if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
            ("the EKS endpoint", format!("https://eks.{region}.{domain}"))
        }
    };
    let mut url = endpoint(&base, variable)?;
    url.path_segments_mut()
        .map_err(|()| Error::Config(format!("{variable} cannot take a path")))?
        .pop_if_empty()
        .extend(["clusters", name]);
    let service = format!("EKS ({url})");
    let credentials = chain.credentials().await?;
    let headers = sign::headers(
        &sign::Request {
            method: "GET",
            url: url.as_str(),
            headers: &[],
            body: &[],
            region,
            service: "eks",
            time: SystemTime::now(),
        },
        &credentials,
    )
    .map_err(|e| Error::Config(format!("the DescribeCluster request cannot be signed: {e}")))?;
    let mut request = chain.http().request(reqwest::Method::GET, url.clone());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let secrets = credentials.secrets();
    let answer = chain.http().send(&service, request, &secrets).await?;
    if !answer.ok() {
        let message = serde_json::from_slice::<Failure>(&answer.body)
            .ok()
            .and_then(|f| f.message)
            .map_or_else(
                || untrusted(&answer.body, &secrets),
                |m| untrusted(m.as_bytes(), &secrets),
            );
        return Err(Error::Refused {
            service,
            detail: format!(
                "DescribeCluster {name} in {region}: HTTP {}: {message}",
                answer.status
            ),
            advice: if answer.status == 404 {
                " Check the cluster input's region and name.".into()
            } else {
                " The identity needs eks:DescribeCluster on the cluster.".into()
            },
        });
    }
    let unusable = |detail: &str| Error::Answer { service: service.clone(), detail: detail.into() };
    let cluster = serde_json::from_slice::<Answer>(&answer.body)
        .map_err(|_| unusable("its DescribeCluster answer is not the documented JSON"))?
        .cluster;
    if let Some(status) = cluster.status.as_deref().filter(|s| *s != "ACTIVE" && *s != "UPDATING") {
        return Err(unusable(&format!(
            "the cluster is {}, not ACTIVE",
            untrusted(status.as_bytes(), &[])
        )));
    }
    let server = cluster.endpoint.ok_or_else(|| unusable("the cluster has no endpoint yet"))?;
    let ca = cluster
        .certificate_authority
        .and_then(|a| a.data)
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d.trim()).ok())
        .and_then(|pem| String::from_utf8(pem).ok())
        .ok_or_else(|| unusable("the cluster's certificateAuthority.data is not base64 of PEM"))?;
    Ok(Located { server, ca_pem: Some(ca) })
}
