//! The pipeline, the one place where the stages meet. Each stage takes the previous stage's
//! typed result; nothing here talks HTTP itself.

use crate::Error;
use crate::inputs::Inputs;
use crate::registry::{self, Credentials, Resolved};

/// Runs the stages that exist so far: the inputs are already checked; this resolves the digest.
///
/// # Errors
/// The first stage error; see [`Error::exit_code`].
pub async fn run(inputs: &Inputs) -> Result<Resolved, Error> {
    let credentials = credentials(inputs).await?;
    crate::log::debug(format_args!("registry credentials: {}", credentials.source));
    let options = registry::Options {
        insecure: inputs.registry.insecure,
        extra_ca: inputs.registry.extra_ca.clone(),
        tag_timeout: inputs.registry.tag_timeout,
    };
    let resolved =
        registry::resolve(&inputs.image, inputs.digest.as_deref(), credentials, &options).await?;
    crate::log::info(format_args!("{} is {}", inputs.image, resolved.digest));
    Ok(resolved)
}

/// The inputs' credentials, else the docker config's, else none.
async fn credentials(inputs: &Inputs) -> Result<Credentials, Error> {
    if let Some((username, password)) = &inputs.registry.credentials {
        return Ok(Credentials::from_inputs(username, password));
    }
    match &inputs.registry.docker_config_dir {
        Some(dir) => {
            Ok(registry::credentials::from_docker_config(dir, inputs.image.registry()).await?)
        }
        None => Ok(Credentials::anonymous()),
    }
}
