//! Who a caller is: AWS principal ARNs parsed and normalised, and the rule for which of them
//! name a person rather than a string the caller chose.
//!
//! trailgate compares people, never ARN strings. Two spellings of one IAM user
//! (`user/Bob`, `user/division/bob`) are one principal, because IAM user names are unique in
//! an account regardless of case and path. An assumed-role session is a person only when its
//! session name was set by the identity provider (IAM Identity Center's `AWSReservedSSO_*`
//! roles, or a role the catalog lists as pinning the session name): anywhere else the caller
//! of `AssumeRole` picks the name, and `bob` could be anyone who can assume the role.

use std::fmt;

/// The prefix of the roles IAM Identity Center creates for permission sets. Their session
/// name is the Identity Center user name, set by Identity Center, never by the caller.
pub const IDENTITY_CENTER_ROLE_PREFIX: &str = "AWSReservedSSO_";

/// A parsed principal ARN, in the form trailgate compares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// `arn:<partition>:iam::<account>:user[/path]/<name>`.
    IamUser {
        partition: String,
        account: String,
        /// Lower-cased: IAM user names are unique regardless of case.
        name: String,
    },
    /// `arn:<partition>:sts::<account>:assumed-role/<role>/<session>`.
    AssumedRole {
        partition: String,
        account: String,
        /// Lower-cased: IAM role names are unique regardless of case.
        role: String,
        /// As written: a session name is not an IAM name and keeps its case.
        session: String,
    },
    /// `arn:<partition>:identitystore:::user/<user id>`: an IAM Identity Center user, named by
    /// the immutable id Identity Center gave it (the Service Authorization Reference's ARN for
    /// an identity-store user). A user's name and e-mail may be changed; this id never is.
    IdentityCenterUser { partition: String, user_id: String },
}

/// Why an ARN is not a principal trailgate accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAPrincipal(pub String);

impl fmt::Display for NotAPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Principal {
    /// Parses an IAM user or assumed-role session ARN. Wildcards, roles (not sessions), root
    /// and federated users are refused: none of them names one person.
    pub fn parse(arn: &str) -> Result<Principal, NotAPrincipal> {
        let refuse = |why: &str| Err(NotAPrincipal(format!("`{arn}` {why}")));
        if arn.contains('*') || arn.contains('?') {
            return refuse("has a wildcard; a principal must name one identity");
        }
        if arn.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return refuse("has spaces or control characters");
        }
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, resource] = parts[..] else {
            return refuse("is not an ARN");
        };
        if prefix != "arn" || partition.is_empty() || !region.is_empty() {
            return refuse("is not a global IAM or STS ARN");
        }
        if service == "identitystore" {
            let user_id = resource.strip_prefix("user/").unwrap_or_default();
            if !account.is_empty() || !is_identity_center_user_id(user_id) {
                return refuse(
                    "is not an Identity Center user (`arn:aws:identitystore:::user/<user id>`)",
                );
            }
            return Ok(Principal::IdentityCenterUser {
                partition: partition.to_owned(),
                user_id: user_id.to_owned(),
            });
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return refuse("has no 12-digit account id");
        }
        let (partition, account) = (partition.to_owned(), account.to_owned());
        match service {
            "iam" => {
                let Some(path_and_name) = resource.strip_prefix("user/") else {
                    return refuse("is not an IAM user (roles and root name no single person)");
                };
                let name = path_and_name.rsplit('/').next().unwrap_or_default();
                if name.is_empty() {
                    return refuse("has no user name");
                }
                Ok(Principal::IamUser {
                    partition,
                    account,
                    name: name.to_ascii_lowercase(),
                })
            }
            "sts" => {
                let Some(rest) = resource.strip_prefix("assumed-role/") else {
                    return refuse("is not an assumed-role session");
                };
                let Some((role, session)) = rest.split_once('/') else {
                    return refuse("has no session name");
                };
                if role.is_empty() || session.is_empty() || session.contains('/') {
                    return refuse("is not `assumed-role/<role>/<session>`");
                }
                Ok(Principal::AssumedRole {
                    partition,
                    account,
                    role: role.to_ascii_lowercase(),
                    session: session.to_owned(),
                })
            }
            _ => refuse("is not an IAM user or an assumed-role session"),
        }
    }

    /// One string per principal, equal exactly when the principals are the same identity.
    pub fn key(&self) -> String {
        match self {
            Principal::IamUser {
                partition,
                account,
                name,
            } => format!("arn:{partition}:iam::{account}:user/{name}"),
            Principal::AssumedRole {
                partition,
                account,
                role,
                session,
            } => format!("arn:{partition}:sts::{account}:assumed-role/{role}/{session}"),
            Principal::IdentityCenterUser { partition, user_id } => {
                identity_center_user_arn(partition, user_id)
            }
        }
    }

    /// The Identity Center user name of a session of an Identity Center role
    /// (`AWSReservedSSO_*`): Identity Center names every session it creates after the user.
    pub fn identity_center_user_name(&self) -> Option<&str> {
        match self {
            Principal::AssumedRole { role, session, .. }
                if role.starts_with(&IDENTITY_CENTER_ROLE_PREFIX.to_ascii_lowercase()) =>
            {
                Some(session)
            }
            _ => None,
        }
    }

    /// The role of a session, as the IAM role ARN (lower-cased name), for comparing with the
    /// catalog's trusted session roles.
    pub fn role_key(&self) -> Option<String> {
        match self {
            Principal::IamUser { .. } | Principal::IdentityCenterUser { .. } => None,
            Principal::AssumedRole {
                partition,
                account,
                role,
                ..
            } => Some(format!("arn:{partition}:iam::{account}:role/{role}")),
        }
    }

    /// Whether the identity provider, not the caller, chose this principal's name: always for
    /// IAM users; for a session, when its role is an Identity Center role or one of
    /// `trusted_roles` (normalised role ARNs, see [`normalise_role_arn`]).
    pub fn name_is_set_by_identity_provider(&self, trusted_roles: &[String]) -> bool {
        match self {
            Principal::IamUser { .. } | Principal::IdentityCenterUser { .. } => true,
            Principal::AssumedRole { role, .. } => {
                role.starts_with(&IDENTITY_CENTER_ROLE_PREFIX.to_ascii_lowercase())
                    || self
                        .role_key()
                        .is_some_and(|key| trusted_roles.contains(&key))
            }
        }
    }
}

/// The principal ARN of an Identity Center user, as the catalog lists it and requests record it.
pub fn identity_center_user_arn(partition: &str, user_id: &str) -> String {
    format!("arn:{partition}:identitystore:::user/{user_id}")
}

/// An identity-store user id: what `identitystore:GetUserId` returns (a UUID, optionally
/// after a 10-hex-digit store prefix and `-`), 1-47 letters, digits and `-`.
pub fn is_identity_center_user_id(text: &str) -> bool {
    (1..=47).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `arn:<p>:iam::<account>:role[/path]/<name>` → the same with the path dropped and the name
/// lower-cased, or `None` when it is not a role ARN.
pub fn normalise_role_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return None;
    };
    if prefix != "arn" || service != "iam" || !region.is_empty() || account.len() != 12 {
        return None;
    }
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    (!name.is_empty() && !name.contains('*')).then(|| {
        format!(
            "arn:{partition}:iam::{account}:role/{}",
            name.to_ascii_lowercase()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(arn: &str) -> String {
        Principal::parse(arn).unwrap().key()
    }

    #[test]
    fn one_iam_user_whatever_its_case_or_path() {
        let bob = key("arn:aws:iam::123456789012:user/bob");
        assert_eq!(key("arn:aws:iam::123456789012:user/Bob"), bob);
        assert_eq!(key("arn:aws:iam::123456789012:user/BOB"), bob);
        assert_eq!(key("arn:aws:iam::123456789012:user/division/bob"), bob);
        assert_ne!(key("arn:aws:iam::210987654321:user/bob"), bob);
        assert_ne!(key("arn:aws:iam::123456789012:user/bob2"), bob);
    }

    #[test]
    fn sessions_keep_their_case_but_not_their_role_case() {
        let sso =
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/bob@example.com";
        assert_eq!(
            key(sso),
            key("arn:aws:sts::123456789012:assumed-role/awsreservedsso_admin_0a1b/bob@example.com")
        );
        assert_ne!(
            key(sso),
            key("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/BOB@example.com")
        );
    }

    #[test]
    fn what_names_no_single_person_is_refused() {
        for arn in [
            "arn:aws:iam::123456789012:user/*",
            "arn:aws:iam::123456789012:user/b?b",
            "arn:aws:iam::123456789012:role/admin",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:assumed-role/admin",
            "arn:aws:sts::123456789012:federated-user/bob",
            "arn:aws:iam::1234:user/bob",
            "arn:aws:iam:us-east-1:123456789012:user/bob",
            "arn:aws:iam::123456789012:user/",
            "arn:aws:iam::123456789012:user/bob\n",
            "bob",
        ] {
            assert!(Principal::parse(arn).is_err(), "{arn}");
        }
    }

    #[test]
    fn only_identity_provider_sessions_name_a_person() {
        let trusted =
            vec![normalise_role_arn("arn:aws:iam::123456789012:role/saml/Engineers").unwrap()];
        let names_person = |arn: &str| {
            Principal::parse(arn)
                .unwrap()
                .name_is_set_by_identity_provider(&trusted)
        };
        assert!(names_person("arn:aws:iam::123456789012:user/bob"));
        assert!(names_person(
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/bob@example.com"
        ));
        assert!(names_person(
            "arn:aws:sts::123456789012:assumed-role/engineers/bob"
        ));
        assert!(!names_person(
            "arn:aws:sts::123456789012:assumed-role/shared-admin/bob"
        ));
        assert!(!names_person(
            "arn:aws:sts::210987654321:assumed-role/Engineers/bob"
        ));
    }

    #[test]
    fn an_identity_center_user_is_named_by_its_immutable_id() {
        let user =
            Principal::parse("arn:aws:identitystore:::user/94482488-3041-7026-18f3-be45837cd0e4")
                .unwrap();
        assert_eq!(
            user.key(),
            "arn:aws:identitystore:::user/94482488-3041-7026-18f3-be45837cd0e4"
        );
        assert!(user.name_is_set_by_identity_provider(&[]));
        for bad in [
            "arn:aws:identitystore:::user/",
            "arn:aws:identitystore::123456789012:user/abc",
            "arn:aws:identitystore:::group/abc",
            "arn:aws:identitystore:::user/a b",
        ] {
            assert!(Principal::parse(bad).is_err(), "{bad}");
        }
        let session = Principal::parse(
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/alice@example.com",
        )
        .unwrap();
        assert_eq!(
            session.identity_center_user_name(),
            Some("alice@example.com")
        );
        let other = Principal::parse("arn:aws:sts::123456789012:assumed-role/ci/alice@example.com")
            .unwrap();
        assert_eq!(
            other.identity_center_user_name(),
            None,
            "only Identity Center names sessions after users"
        );
    }
}
