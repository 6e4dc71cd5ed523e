//! The Kubernetes client's connection stack: kube's own (its TLS, auth and header layers, its
//! connect timeout), with one change, host names resolved by [`crate::dns`] instead of the C
//! library, the same resolver the registry and the cloud services get.

use http::{Request, Response};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder, ConfigExt as _, DynBody};
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder, ServiceExt as _, util::BoxService};

/// What the stack is once built, as kube's own builder types it.
pub type Service = BoxService<Request<Body>, Response<Box<DynBody>>, BoxError>;

/// The client builder for `config`, as `ClientBuilder::try_from` builds it with kube's
/// features here (no proxy, no compression, no tracing).
///
/// # Errors
/// kube's, when the kubeconfig's TLS or credentials cannot be used or it names a proxy.
pub fn builder(config: kube::Config) -> Result<ClientBuilder<Service>, kube::Error> {
    if config.proxy_url.is_some() {
        // kube refuses a kubeconfig's proxy-url without its proxy features, which kubeship
        // does not enable: its own error says so.
        kube::client::ClientBuilder::<Service>::try_from(config.clone())?;
    }
    let mut connector = HttpConnector::new_with_resolver(crate::dns::Resolver);
    connector.enforce_http(false);
    let connector = config.rustls_https_connector_with_connector(connector)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(connector);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let client: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Builder::new(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(RetryPolicy::server_retry).map(RetryLayer::new))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(client)
        .map_response(|response| {
            response.map(|body| Box::new(body.map_err(BoxError::from)) as Box<DynBody>)
        });
    Ok(ClientBuilder::new(BoxService::new(service), config.default_namespace))
}
