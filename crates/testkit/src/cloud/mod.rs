//! The clouds' token and cluster services as documented, on loopback, for the EKS, GKE and AKS
//! logins: each fake checks what it receives as the real service would (signatures, audiences,
//! grant types, scopes) and answers in the service's documented form. Also AWS's SigV4 test
//! vectors, an independent SigV4, and an EKS token verifier packaged as a TokenReview webhook.

pub mod eks;
pub mod entra;
pub mod github_oidc;
pub mod google;
pub mod oidc;
pub mod server;
pub mod sigv4;
pub mod sigv4_vectors;
pub mod sts;
