//! `jitctl profile add` and `jitctl console`: using a grant from every AWS tool and from the
//! AWS console.
//!
//! `profile add` writes an AWS CLI profile whose credentials come from
//! `jitctl credential-process`, so SDKs refresh through trailgate until the grant ends.
//! `console` turns the grant's vended credentials into a console sign-in URL through the AWS
//! federation endpoint (`getSigninToken`, then `login`). The URLs are built here as pure
//! functions and unit-tested; the federation endpoint itself is not reachable from the local stack.

use anyhow::{Context, Result, bail};
use clap::Args;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use std::path::PathBuf;

use crate::api;
use crate::endpoint::Target;

/// The federation endpoint of the commercial partition.
pub const FEDERATION_ENDPOINT: &str = "https://signin.aws.amazon.com/federation";
/// Where the console opens by default.
pub const CONSOLE_HOME: &str = "https://console.aws.amazon.com/";

/// RFC 3986 unreserved characters stay; everything else is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Arguments of `jitctl profile add`.
#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// Name of the AWS profile to write (e.g. sandbox-admin).
    pub name: String,
    /// The ACTIVE request whose credentials the profile uses.
    #[arg(long)]
    pub request: String,
    /// Region for the profile (default: the API's region).
    #[arg(long = "profile-region")]
    pub profile_region: Option<String>,
    /// The AWS config file to edit (default: $AWS_CONFIG_FILE, then ~/.aws/config).
    #[arg(long)]
    pub config_file: Option<PathBuf>,
}

/// Arguments of `jitctl console`.
#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// The ACTIVE request to open the console with.
    #[arg(long)]
    pub request: String,
    /// Page to open after sign-in.
    #[arg(long, default_value = CONSOLE_HOME)]
    pub destination: String,
    /// The federation endpoint (another partition's, e.g. https://signin.amazonaws-us-gov.com/federation).
    #[arg(long, default_value = FEDERATION_ENDPOINT)]
    pub federation_endpoint: String,
}

/// The `credential_process` line of a profile: jitctl signing with the caller's own profile and
/// endpoint, so the written profile keeps working from any directory.
pub fn credential_process_line(jitctl: &str, target: &Target, request: &str) -> String {
    let mut words = vec![quote(jitctl)];
    if let Some(endpoint) = &target.endpoint {
        words.push(format!("--endpoint {}", quote(endpoint)));
    }
    if let Some(profile) = &target.profile {
        words.push(format!("--profile {}", quote(profile)));
    }
    if let Some(region) = &target.region {
        words.push(format!("--region {}", quote(region)));
    }
    words.push(format!("credential-process --request {}", quote(request)));
    words.join(" ")
}

/// The AWS CLI splits `credential_process` on whitespace and honours double quotes.
fn quote(word: &str) -> String {
    if word.chars().any(|c| c.is_whitespace() || c == '"') {
        format!("\"{}\"", word.replace('"', "\\\""))
    } else {
        word.to_owned()
    }
}

/// `config` with the section `[profile <name>]` replaced by (or extended with) `settings`;
/// every other section and comment is kept as it was.
pub fn upsert_profile(config: &str, name: &str, settings: &[(&str, String)]) -> String {
    let header = if name == "default" {
        "[default]".to_owned()
    } else {
        format!("[profile {name}]")
    };
    let mut out = Vec::new();
    let mut skipping = false;
    let mut written = false;
    let section: Vec<String> = std::iter::once(header.clone())
        .chain(
            settings
                .iter()
                .map(|(key, value)| format!("{key} = {value}")),
        )
        .collect();
    for line in config.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            skipping = trimmed == header;
            if skipping && !written {
                out.extend(section.iter().cloned());
                written = true;
            }
        }
        if !skipping {
            out.push(line.to_owned());
        }
    }
    if !written {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.extend(section);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// The `getSigninToken` URL for a set of temporary credentials (`credential_process` JSON).
pub fn signin_token_url(federation_endpoint: &str, credentials: &Value) -> Result<String> {
    let field = |name: &str| {
        credentials[name]
            .as_str()
            .with_context(|| format!("the credentials have no `{name}`"))
    };
    // No SessionDuration: for AssumeRole credentials the console session lasts as long as they
    // do, and the grant's session policy ends everything at expires_at anyway.
    let session = json!({
        "sessionId": field("AccessKeyId")?,
        "sessionKey": field("SecretAccessKey")?,
        "sessionToken": field("SessionToken")?,
    });
    Ok(format!(
        "{federation_endpoint}?Action=getSigninToken&Session={}",
        encode(&session.to_string())
    ))
}

/// The console sign-in URL for a token from `getSigninToken`.
pub fn login_url(federation_endpoint: &str, signin_token: &str, destination: &str) -> String {
    format!(
        "{federation_endpoint}?Action=login&Issuer={}&Destination={}&SigninToken={}",
        encode("trailgate"),
        encode(destination),
        encode(signin_token)
    )
}

/// `jitctl profile add`.
pub async fn add_profile(target: &Target, args: ProfileArgs) -> Result<()> {
    let path = match args.config_file {
        Some(path) => path,
        None => match std::env::var_os("AWS_CONFIG_FILE") {
            Some(path) => PathBuf::from(path),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                .join(".aws")
                .join("config"),
        },
    };
    let jitctl = std::env::current_exe()
        .context("locating jitctl")?
        .display()
        .to_string();
    let mut settings = vec![(
        "credential_process",
        credential_process_line(&jitctl, target, &args.request),
    )];
    if let Some(region) = args.profile_region.or_else(|| target.region.clone()) {
        settings.push(("region", region));
    }
    let current = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, upsert_profile(&current, &args.name, &settings))
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "profile {} written to {}; try: aws --profile {} sts get-caller-identity",
        args.name,
        path.display(),
        args.name
    );
    Ok(())
}

/// `jitctl console`: vends credentials, exchanges them for a sign-in token and prints the URL.
pub async fn console(target: &Target, args: ConsoleArgs) -> Result<()> {
    let client = api::Client::connect(target).await?;
    let credentials = client
        .get(&format!(
            "/requests/{}/credentials",
            api::segment(&args.request)
        ))
        .await?;
    let token_url = signin_token_url(&args.federation_endpoint, &credentials)?;
    let answer: Value = reqwest::Client::new()
        .get(&token_url)
        .send()
        .await
        .with_context(|| format!("calling {}", args.federation_endpoint))?
        .error_for_status()?
        .json()
        .await?;
    let Some(token) = answer["SigninToken"].as_str() else {
        bail!("the federation endpoint returned no SigninToken");
    };
    // The URL is a bearer credential until it is used (15 minutes): printed, never logged.
    println!(
        "{}",
        login_url(&args.federation_endpoint, token, &args.destination)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Value {
        json!({"Version": 1, "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "s/e+c=r&t",
               "SessionToken": "tok en/+=", "Expiration": "2026-11-21T12:00:00Z"})
    }

    fn query(url: &str) -> Vec<(String, String)> {
        url.split_once('?')
            .unwrap()
            .1
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (
                    k.to_owned(),
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8()
                        .unwrap()
                        .into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn the_signin_token_url_carries_the_session_json_encoded() {
        let url = signin_token_url(FEDERATION_ENDPOINT, &credentials()).unwrap();
        assert!(url.starts_with(
            "https://signin.aws.amazon.com/federation?Action=getSigninToken&Session="
        ));
        // Every reserved character of the secret and token is encoded, so none splits the query.
        assert!(!url.contains('+') && !url.contains(' ') && url.matches('=').count() == 2);
        let params = query(&url);
        assert_eq!(params[0], ("Action".into(), "getSigninToken".into()));
        let session: Value = serde_json::from_str(&params[1].1).unwrap();
        assert_eq!(
            session,
            json!({"sessionId": "ASIAEXAMPLE", "sessionKey": "s/e+c=r&t", "sessionToken": "tok en/+="})
        );
        assert!(signin_token_url(FEDERATION_ENDPOINT, &json!({"AccessKeyId": "x"})).is_err());
    }

    #[test]
    fn the_login_url_names_the_issuer_destination_and_token() {
        let url = login_url(
            FEDERATION_ENDPOINT,
            "tok/en+=",
            "https://console.aws.amazon.com/s3/home?region=eu-west-1",
        );
        let params = query(&url);
        assert_eq!(
            params,
            [
                ("Action".into(), "login".into()),
                ("Issuer".into(), "trailgate".into()),
                (
                    "Destination".into(),
                    "https://console.aws.amazon.com/s3/home?region=eu-west-1".into()
                ),
                ("SigninToken".into(), "tok/en+=".into()),
            ]
        );
    }

    #[test]
    fn a_profile_is_added_or_replaced_and_the_rest_kept() {
        let settings = [
            (
                "credential_process",
                "jitctl credential-process --request r-1".to_owned(),
            ),
            ("region", "eu-west-1".to_owned()),
        ];
        let added = upsert_profile("[default]\nregion = us-east-1\n", "sandbox", &settings);
        assert_eq!(
            added,
            "[default]\nregion = us-east-1\n\n[profile sandbox]\ncredential_process = jitctl credential-process --request r-1\nregion = eu-west-1\n"
        );
        let replaced = upsert_profile(
            "# mine\n[profile sandbox]\ncredential_process = old\n[profile other]\nregion = x\n",
            "sandbox",
            &settings[..1],
        );
        assert_eq!(
            replaced,
            "# mine\n[profile sandbox]\ncredential_process = jitctl credential-process --request r-1\n[profile other]\nregion = x\n"
        );
    }

    #[test]
    fn the_credential_process_line_keeps_the_signing_profile_and_quotes_spaces() {
        let target = Target {
            endpoint: Some("https://x.execute-api.us-east-1.amazonaws.com/v1".into()),
            profile: Some("alice".into()),
            region: None,
            aws_config_file: None,
        };
        assert_eq!(
            credential_process_line("/opt/my tools/jitctl", &target, "r-abc"),
            "\"/opt/my tools/jitctl\" --endpoint https://x.execute-api.us-east-1.amazonaws.com/v1 --profile alice credential-process --request r-abc"
        );
    }
}
