//! Which exec plugin a kubeconfig names, read from its command, args and env as the plugins
//! themselves read them: `aws [global options] eks get-token --cluster-name|--cluster-id X
//! [--region R] [--role-arn A]`, `aws-iam-authenticator token -i X [-r A] [--region R]`,
//! `gke-gcloud-auth-plugin`, `kubelogin get-token [--login M] [--server-id S] [--client-id C]
//! [--tenant-id T] [--environment E] [--client-secret X]`. Flags take `--flag value` and
//! `--flag=value`. Anything else is not recognised.

use secrecy::SecretString;

use super::{aws, azure};

/// A plugin kubeship can stand in for.
#[derive(Debug, Clone)]
pub enum Recognised {
    Eks { plugin: aws::Plugin, command: &'static str },
    Gke,
    Aks(azure::Plugin),
}

impl Recognised {
    /// The binary the image lacks, for the log line.
    pub fn command(&self) -> &'static str {
        match self {
            Self::Eks { command, .. } => command,
            Self::Gke => "gke-gcloud-auth-plugin",
            Self::Aks(_) => "kubelogin",
        }
    }

    /// The cloud whose token kubeship mints.
    pub fn cloud(&self) -> &'static str {
        match self {
            Self::Eks { .. } => "EKS",
            Self::Gke => "GKE",
            Self::Aks(_) => "AKS",
        }
    }
}

/// The value of the first of `names` in `args`.
fn flag(args: &[String], names: &[&str]) -> Option<String> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        for name in names {
            if arg == name {
                return iter.next().cloned();
            }
            if let Some(value) = arg.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')) {
                return Some(value.to_owned());
            }
        }
    }
    None
}

/// The words that are not flags or flag values (`eks`, `get-token`, `token`), in order.
fn words(args: &[String]) -> Vec<&str> {
    // Flags of these plugins that take no value.
    const SWITCHES: &[&str] = &[
        "--debug",
        "--no-verify-ssl",
        "--no-paginate",
        "--no-sign-request",
        "--forward-session-name",
        "--legacy",
    ];
    let mut out = Vec::new();
    let mut skip = false;
    for arg in args {
        if skip {
            skip = false;
        } else if arg.starts_with('-') {
            skip = !arg.contains('=') && !SWITCHES.contains(&arg.as_str());
        } else {
            out.push(arg.as_str());
        }
    }
    out
}

/// The plugin `command` with `args`, if kubeship can stand in for it.
pub fn recognise(command: &str, args: &[String]) -> Option<Recognised> {
    let name = command.rsplit('/').next().unwrap_or(command);
    let words = words(args);
    let region = flag(args, &["--region"]);
    match name {
        "aws" if words.windows(2).any(|w| w == ["eks", "get-token"]) => {
            let cluster = flag(args, &["--cluster-name", "--cluster-id"])?;
            let role_arn = flag(args, &["--role-arn"]);
            Some(Recognised::Eks {
                plugin: aws::Plugin { cluster, region, role_arn },
                command: "aws",
            })
        }
        "aws-iam-authenticator" if words.first() == Some(&"token") => {
            let cluster = flag(args, &["-i", "--cluster-id"])?;
            let role_arn = flag(args, &["-r", "--role"]);
            Some(Recognised::Eks {
                plugin: aws::Plugin { cluster, region, role_arn },
                command: "aws-iam-authenticator",
            })
        }
        "gke-gcloud-auth-plugin" => Some(Recognised::Gke),
        "kubelogin" if words.first() == Some(&"get-token") => {
            Some(Recognised::Aks(azure::Plugin {
                login: flag(args, &["-l", "--login"]),
                server_id: flag(args, &["--server-id"]),
                client_id: flag(args, &["--client-id"]),
                tenant_id: flag(args, &["-t", "--tenant-id"]),
                environment: flag(args, &["-e", "--environment"]),
                client_secret: flag(args, &["--client-secret"]).map(SecretString::from),
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    /// What `aws eks update-kubeconfig` writes, with the region before or after the command.
    #[test]
    fn aws_eks_get_token() {
        for a in [
            "--region us-west-2 eks get-token --cluster-name prod --output json",
            "eks get-token --cluster-name=prod --region=us-west-2 --role-arn arn:aws:iam::1:role/d",
        ] {
            let Some(Recognised::Eks { plugin, command }) = recognise("aws", &args(a)) else {
                panic!("{a}")
            };
            assert_eq!(
                (plugin.cluster.as_str(), plugin.region.as_deref(), command),
                ("prod", Some("us-west-2"), "aws")
            );
        }
        let Some(Recognised::Eks { plugin, .. }) =
            recognise("/usr/local/bin/aws", &args("eks get-token --cluster-id abc --role-arn R"))
        else {
            panic!()
        };
        assert_eq!((plugin.cluster.as_str(), plugin.role_arn.as_deref()), ("abc", Some("R")));
        // Other aws commands, or no cluster, are not ours.
        assert!(recognise("aws", &args("sts get-caller-identity")).is_none());
        assert!(recognise("aws", &args("eks get-token")).is_none());
        assert!(recognise("aws", &args("--profile ci eks get-token --cluster-name x")).is_some());
    }

    /// aws-iam-authenticator's short flags.
    #[test]
    fn aws_iam_authenticator() {
        let Some(Recognised::Eks { plugin, command }) =
            recognise("aws-iam-authenticator", &args("token -i prod -r arn:aws:iam::1:role/x"))
        else {
            panic!()
        };
        assert_eq!(command, "aws-iam-authenticator");
        assert_eq!(
            (plugin.cluster.as_str(), plugin.role_arn.as_deref()),
            ("prod", Some("arn:aws:iam::1:role/x"))
        );
        assert!(recognise("aws-iam-authenticator", &args("verify -i x")).is_none());
    }

    /// gcloud's plugin and kubelogin, as their converters write them.
    #[test]
    fn gke_and_kubelogin() {
        assert!(matches!(recognise("gke-gcloud-auth-plugin", &[]), Some(Recognised::Gke)));
        let a = args(
            "get-token --login workloadidentity --server-id 6dae42f8-4368-4678-94ff-3960e28e3630 \
             --environment AzurePublicCloud -t tenant-1 --client-id=app-1",
        );
        let Some(Recognised::Aks(p)) = recognise("kubelogin", &a) else { panic!() };
        assert_eq!(p.login.as_deref(), Some("workloadidentity"));
        assert_eq!(p.server_id.as_deref(), Some("6dae42f8-4368-4678-94ff-3960e28e3630"));
        assert_eq!(
            (p.tenant_id.as_deref(), p.client_id.as_deref()),
            (Some("tenant-1"), Some("app-1"))
        );
        assert!(recognise("kubelogin", &args("convert-kubeconfig -l azurecli")).is_none());
        assert!(
            recognise("doctl", &args("kubernetes cluster kubeconfig exec-credential x")).is_none()
        );
    }
}
