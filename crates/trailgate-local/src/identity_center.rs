//! The local IAM Identity Center, on moto: the hub plays Identity Center's delegated
//! administrator (moto gives every account an instance of its own), with one identity-store user
//! per local user (user name `<name>@example.com`), one permission set `ProdAccess` tagged
//! `trailgate:managed=true`, and a hub role `AWSReservedSSO_ProdAccess_<hex>` standing in for
//! Identity Center's sign-in.
//!
//! On AWS a person signs in to the access portal and Identity Center creates a session of the
//! permission set's `AWSReservedSSO_*` role named after their user name. Locally a user assumes
//! that role with their user name as the session name (profile `<name>-sso` in the stack's AWS
//! config), and the router's API accepts the session as API Gateway would
//! (`router::sts::identity_center_session`). moto's identity store and assignments are real
//! enough for trailgate; their asynchrony comes from the router (`router::sso`).

use aws_sdk_identitystore::types::{Email, Name};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::router::Log;

/// The permission set the local catalog grants.
pub const PERMISSION_SET_NAME: &str = "ProdAccess";
/// The stand-in for the role Identity Center provisions for it (its suffix is fixed here; on
/// AWS it is a hash Identity Center picks).
pub const SSO_ROLE_NAME: &str = "AWSReservedSSO_ProdAccess_0a1b2c3d4e5f6a7b";

/// What the stack records of its Identity Center (state.json `identity_center`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalIdentityCenter {
    pub instance_arn: String,
    pub identity_store_id: String,
    pub permission_set_arn: String,
    /// The hub role whose sessions stand in for Identity Center's.
    pub sso_role_arn: String,
    /// Local user name → identity-store user id.
    pub users: BTreeMap<String, String>,
}

impl LocalIdentityCenter {
    /// Replaces `${IdentityCenterInstance}`, `${PermissionSet:ProdAccess}` and
    /// `${IdentityCenterUser:<name>}` in `text` (the local catalog).
    pub fn substitute(&self, text: &str) -> String {
        let mut out = text
            .replace("${IdentityCenterInstance}", &self.instance_arn)
            .replace(
                &format!("${{PermissionSet:{PERMISSION_SET_NAME}}}"),
                &self.permission_set_arn,
            );
        for (name, id) in &self.users {
            out = out.replace(&format!("${{IdentityCenterUser:{name}}}"), id);
        }
        out
    }

    /// The Identity Center user name of a local user.
    pub fn user_name(name: &str) -> String {
        format!("{name}@example.com")
    }
}

/// Creates the users, the permission set and the stand-in role in the hub.
pub async fn create(endpoint: &str, names: &[String], log: &Log) -> Result<LocalIdentityCenter> {
    let fail = |what: &str, err: String| Error::deploy("IdentityCenter", format!("{what}: {err}"));
    let config = crate::cloudformation::sdk_config(endpoint);
    let sso = aws_sdk_ssoadmin::Client::new(&config);
    let instance = sso
        .list_instances()
        .send()
        .await
        .map_err(|e| fail("ListInstances", format!("{e:?}")))?
        .instances
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| fail("ListInstances", "moto has no instance".into()))?;
    let instance_arn = instance
        .instance_arn
        .ok_or_else(|| fail("ListInstances", "no instance ARN".into()))?;
    let identity_store_id = instance
        .identity_store_id
        .ok_or_else(|| fail("ListInstances", "no identity store".into()))?;
    let store = aws_sdk_identitystore::Client::new(&config);
    let mut users = BTreeMap::new();
    for name in names {
        let user_name = LocalIdentityCenter::user_name(name);
        let created = store
            .create_user()
            .identity_store_id(&identity_store_id)
            .user_name(&user_name)
            .display_name(name)
            .name(
                Name::builder()
                    .given_name(name)
                    .family_name("Local")
                    .build(),
            )
            .emails(Email::builder().value(&user_name).primary(true).build())
            .send()
            .await
            .map_err(|e| fail("CreateUser", format!("{e:?}")))?;
        users.insert(name.clone(), created.user_id().to_owned());
    }
    let permission_set_arn = sso
        .create_permission_set()
        .instance_arn(&instance_arn)
        .name(PERMISSION_SET_NAME)
        .description("Production access, granted just in time by trailgate")
        .session_duration("PT1H")
        .tags(
            aws_sdk_ssoadmin::types::Tag::builder()
                .key(trailgate_domain::policy::MANAGED_TAG)
                .value("true")
                .build()
                .map_err(|e| fail("Tag", e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| fail("CreatePermissionSet", format!("{e:?}")))?
        .permission_set
        .and_then(|set| set.permission_set_arn)
        .ok_or_else(|| fail("CreatePermissionSet", "no ARN".into()))?;
    let iam = aws_sdk_iam::Client::new(&config);
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{}:root", crate::cloudformation::ACCOUNT_ID)},
            "Action": "sts:AssumeRole"
        }]
    });
    let sso_role_arn = iam
        .create_role()
        .role_name(SSO_ROLE_NAME)
        .path("/aws-reserved/sso.amazonaws.com/")
        .assume_role_policy_document(trust.to_string())
        .description("Local stand-in for the role Identity Center provisions for ProdAccess")
        .send()
        .await
        .map_err(|e| fail("CreateRole", format!("{e:?}")))?
        .role
        .map(|role| role.arn)
        .ok_or_else(|| fail("CreateRole", "no role".into()))?;
    log.line(format!(
        "identity center: {instance_arn}, store {identity_store_id}, {} users, permission set {permission_set_arn}",
        users.len()
    ));
    Ok(LocalIdentityCenter {
        instance_arn,
        identity_store_id,
        permission_set_arn,
        sso_role_arn,
        users,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_names_the_instance_the_permission_set_and_the_users_by_placeholder() {
        let center = LocalIdentityCenter {
            instance_arn: "arn:aws:sso:::instance/ssoins-abc".into(),
            identity_store_id: "d-1".into(),
            permission_set_arn: "arn:aws:sso:::permissionSet/ssoins-abc/ps-1".into(),
            sso_role_arn: String::new(),
            users: BTreeMap::from([("bob".into(), "u-bob".into())]),
        };
        let text = center.substitute(
            "${IdentityCenterInstance} ${PermissionSet:ProdAccess} user/${IdentityCenterUser:bob}",
        );
        assert_eq!(
            text,
            "arn:aws:sso:::instance/ssoins-abc arn:aws:sso:::permissionSet/ssoins-abc/ps-1 user/u-bob"
        );
    }
}
