//! The `IdentityCenter` port: IAM Identity Center's sso-admin and identitystore APIs, called in
//! the account that administers Identity Center: the hub itself, as its delegated
//! administrator (or, through `admin_role_arn`, a role there).
//!
//! Identity Center's account-assignment and provisioning calls are asynchronous: each answers a
//! request id that the domain polls. Its limits (20 TPS, at most 10 assignment operations in
//! flight per instance) are kept by the SDK's retries on throttling and by the functions'
//! reserved concurrency; a `ConflictException` (another operation on the same assignment or
//! permission set in flight) is `Retryable`.

use crate::agents::Agents;
use crate::errors::classify;
use aws_sdk_identitystore::types::{AlternateIdentifier, UniqueAttribute};
use aws_sdk_ssoadmin::Client;
use aws_sdk_ssoadmin::error::ProvideErrorMetadata;
use aws_sdk_ssoadmin::types::{
    AccountAssignmentOperationStatus, PrincipalType, ProvisionTargetType, StatusValues, TargetType,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ports::{IdentityCenter, Operation, OperationStatus, PermissionSetInfo};
use trailgate_domain::request::Assignment;

/// The `IdentityCenter` port over the SDK.
pub struct IdentityCenterClient {
    agents: Arc<Agents>,
    /// The role in Identity Center's account, if the hub is not its delegated administrator.
    admin_role_arn: Option<String>,
    /// Instance ARN → identity store id (`ListInstances`), learnt once per cold start.
    stores: Mutex<HashMap<String, String>>,
}

/// The error codes that mean "another operation is in the way; try again".
const CONFLICT: &str = "ConflictException";

fn sso_error<E, R>(what: &str, err: &aws_sdk_ssoadmin::error::SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let classified = classify(what, err);
    if err.as_service_error().and_then(ProvideErrorMetadata::code) == Some(CONFLICT) {
        return Error::retryable(classified.message);
    }
    classified
}

fn is_not_found<E: ProvideErrorMetadata, R>(err: &aws_sdk_ssoadmin::error::SdkError<E, R>) -> bool {
    err.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ResourceNotFoundException")
}

fn request_id_of(what: &str, status: Option<&AccountAssignmentOperationStatus>) -> Result<String> {
    status
        .and_then(AccountAssignmentOperationStatus::request_id)
        .map(str::to_owned)
        .ok_or_else(|| Error::internal(format!("{what} answered no request id")))
}

fn status_of(status: Option<&StatusValues>, reason: Option<&str>) -> OperationStatus {
    match status {
        Some(StatusValues::Succeeded) => OperationStatus::Succeeded,
        Some(StatusValues::Failed) => {
            OperationStatus::Failed(reason.unwrap_or("no reason given").to_owned())
        }
        _ => OperationStatus::InProgress,
    }
}

impl IdentityCenterClient {
    pub fn new(agents: Arc<Agents>, admin_role_arn: Option<String>) -> IdentityCenterClient {
        IdentityCenterClient {
            agents,
            admin_role_arn,
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// Identity Center called with the function's own credentials: the hub is its delegated
    /// administrator. (A role in the management account, for deployments where it is not, is
    /// not built yet; `admin_role_arn` is where it goes.)
    pub fn from_env(sdk: &aws_config::SdkConfig, function: &str) -> IdentityCenterClient {
        IdentityCenterClient::new(Arc::new(Agents::from_env(sdk, function)), None)
    }

    async fn config(&self) -> Result<aws_config::SdkConfig> {
        match &self.admin_role_arn {
            None => Ok(self.agents.hub_config().clone()),
            Some(arn) => Ok(self.agents.assume(arn, None).await?.0),
        }
    }

    async fn client(&self) -> Result<Client> {
        Ok(Client::new(&self.config().await?))
    }

    /// The identity store of `instance_arn`, from `ListInstances`.
    async fn identity_store(&self, instance_arn: &str) -> Result<String> {
        if let Some(store) = self.stores.lock().expect("stores lock").get(instance_arn) {
            return Ok(store.clone());
        }
        let client = self.client().await?;
        let mut next = None;
        loop {
            let page = client
                .list_instances()
                .set_next_token(next)
                .send()
                .await
                .map_err(|err| sso_error("sso-admin ListInstances", &err))?;
            let mut stores = self.stores.lock().expect("stores lock");
            for instance in page.instances() {
                if let (Some(arn), Some(store)) =
                    (instance.instance_arn(), instance.identity_store_id())
                {
                    stores.insert(arn.to_owned(), store.to_owned());
                }
            }
            if let Some(store) = stores.get(instance_arn) {
                return Ok(store.clone());
            }
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                return Err(Error::internal(format!(
                    "Identity Center has no instance `{instance_arn}` in this account"
                )));
            }
        }
    }
}

impl IdentityCenterClient {
    /// The principals of `kind` the permission set is assigned to in `account`.
    async fn assigned(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
        kind: PrincipalType,
    ) -> Result<Vec<String>> {
        let client = self.client().await?;
        let mut principals = Vec::new();
        let mut next = None;
        loop {
            let page = client
                .list_account_assignments()
                .instance_arn(instance_arn)
                .account_id(account)
                .permission_set_arn(permission_set_arn)
                .set_next_token(next)
                .send()
                .await
                .map_err(|err| sso_error("sso-admin ListAccountAssignments", &err))?;
            principals.extend(
                page.account_assignments()
                    .iter()
                    .filter(|held| held.principal_type() == Some(&kind))
                    .filter_map(|held| held.principal_id().map(str::to_owned)),
            );
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(principals);
            }
        }
    }

    /// Starts `DeleteAccountAssignment`; `None` when there is no such assignment.
    async fn delete(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
        kind: PrincipalType,
        principal_id: &str,
    ) -> Result<Option<String>> {
        let result = self
            .client()
            .await?
            .delete_account_assignment()
            .instance_arn(instance_arn)
            .target_id(account)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(permission_set_arn)
            .principal_type(kind)
            .principal_id(principal_id)
            .send()
            .await;
        match result {
            Ok(output) => request_id_of(
                "DeleteAccountAssignment",
                output.account_assignment_deletion_status(),
            )
            .map(Some),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(sso_error("sso-admin DeleteAccountAssignment", &err)),
        }
    }
}

impl IdentityCenter for IdentityCenterClient {
    async fn user_id(&self, instance_arn: &str, user_name: &str) -> Result<Option<String>> {
        let store = self.identity_store(instance_arn).await?;
        let identifier = AlternateIdentifier::UniqueAttribute(
            UniqueAttribute::builder()
                .attribute_path("userName")
                .attribute_value(aws_smithy_types::Document::String(user_name.to_owned()))
                .build()
                .map_err(|err| Error::internal(format!("identitystore identifier: {err}")))?,
        );
        let client = aws_sdk_identitystore::Client::new(&self.config().await?);
        match client
            .get_user_id()
            .identity_store_id(&store)
            .alternate_identifier(identifier)
            .send()
            .await
        {
            Ok(output) => Ok(Some(output.user_id().to_owned())),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(classify("identitystore GetUserId", &err)),
        }
    }

    async fn permission_set(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
    ) -> Result<Option<PermissionSetInfo>> {
        let client = self.client().await?;
        let described = match client
            .describe_permission_set()
            .instance_arn(instance_arn)
            .permission_set_arn(permission_set_arn)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) if is_not_found(&err) => return Ok(None),
            Err(err) => return Err(sso_error("sso-admin DescribePermissionSet", &err)),
        };
        let Some(set) = described.permission_set() else {
            return Ok(None);
        };
        let session_duration_seconds = set
            .session_duration()
            .and_then(trailgate_domain::time::parse_duration)
            .map_or(3600, |duration| duration.whole_seconds());
        let mut tags = Vec::new();
        let mut next = None;
        loop {
            let page = client
                .list_tags_for_resource()
                .instance_arn(instance_arn)
                .resource_arn(permission_set_arn)
                .set_next_token(next)
                .send()
                .await
                .map_err(|err| sso_error("sso-admin ListTagsForResource", &err))?;
            tags.extend(
                page.tags()
                    .iter()
                    .map(|tag| (tag.key().to_owned(), tag.value().to_owned())),
            );
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        Ok(Some(PermissionSetInfo {
            name: set.name().unwrap_or_default().to_owned(),
            session_duration_seconds,
            tags,
        }))
    }

    async fn create_assignment(&self, assignment: &Assignment) -> Result<String> {
        let output = self
            .client()
            .await?
            .create_account_assignment()
            .instance_arn(&assignment.instance_arn)
            .target_id(&assignment.account)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(&assignment.permission_set_arn)
            .principal_type(PrincipalType::User)
            .principal_id(&assignment.user_id)
            .send()
            .await
            .map_err(|err| sso_error("sso-admin CreateAccountAssignment", &err))?;
        request_id_of(
            "CreateAccountAssignment",
            output.account_assignment_creation_status(),
        )
    }

    async fn delete_assignment(&self, assignment: &Assignment) -> Result<Option<String>> {
        self.delete(
            &assignment.instance_arn,
            &assignment.permission_set_arn,
            &assignment.account,
            PrincipalType::User,
            &assignment.user_id,
        )
        .await
    }

    async fn is_assigned(&self, assignment: &Assignment) -> Result<bool> {
        Ok(self
            .assigned_users(
                &assignment.instance_arn,
                &assignment.permission_set_arn,
                &assignment.account,
            )
            .await?
            .contains(&assignment.user_id))
    }

    async fn assigned_users(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
    ) -> Result<Vec<String>> {
        self.assigned(
            instance_arn,
            permission_set_arn,
            account,
            PrincipalType::User,
        )
        .await
    }

    async fn assigned_groups(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
    ) -> Result<Vec<String>> {
        self.assigned(
            instance_arn,
            permission_set_arn,
            account,
            PrincipalType::Group,
        )
        .await
    }

    async fn group_members(&self, instance_arn: &str, group_id: &str) -> Result<Vec<String>> {
        let store = self.identity_store(instance_arn).await?;
        let client = aws_sdk_identitystore::Client::new(&self.config().await?);
        let mut members = Vec::new();
        let mut next = None;
        loop {
            let page = client
                .list_group_memberships()
                .identity_store_id(&store)
                .group_id(group_id)
                .set_next_token(next)
                .send()
                .await
                .map_err(|err| classify("identitystore ListGroupMemberships", &err))?;
            members.extend(page.group_memberships().iter().filter_map(|membership| {
                match membership.member_id() {
                    Some(aws_sdk_identitystore::types::MemberId::UserId(id)) => Some(id.clone()),
                    _ => None,
                }
            }));
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(members);
            }
        }
    }

    async fn delete_group_assignment(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
        group_id: &str,
    ) -> Result<Option<String>> {
        self.delete(
            instance_arn,
            permission_set_arn,
            account,
            PrincipalType::Group,
            group_id,
        )
        .await
    }

    async fn status(
        &self,
        operation: Operation,
        instance_arn: &str,
        request_id: &str,
    ) -> Result<OperationStatus> {
        let client = self.client().await?;
        Ok(match operation {
            Operation::CreateAssignment => {
                let output = client
                    .describe_account_assignment_creation_status()
                    .instance_arn(instance_arn)
                    .account_assignment_creation_request_id(request_id)
                    .send()
                    .await
                    .map_err(|err| {
                        sso_error("sso-admin DescribeAccountAssignmentCreationStatus", &err)
                    })?;
                let status = output.account_assignment_creation_status();
                status_of(
                    status.and_then(AccountAssignmentOperationStatus::status),
                    status.and_then(AccountAssignmentOperationStatus::failure_reason),
                )
            }
            Operation::DeleteAssignment => {
                let output = client
                    .describe_account_assignment_deletion_status()
                    .instance_arn(instance_arn)
                    .account_assignment_deletion_request_id(request_id)
                    .send()
                    .await
                    .map_err(|err| {
                        sso_error("sso-admin DescribeAccountAssignmentDeletionStatus", &err)
                    })?;
                let status = output.account_assignment_deletion_status();
                status_of(
                    status.and_then(AccountAssignmentOperationStatus::status),
                    status.and_then(AccountAssignmentOperationStatus::failure_reason),
                )
            }
            Operation::Provision => {
                let output = client
                    .describe_permission_set_provisioning_status()
                    .instance_arn(instance_arn)
                    .provision_permission_set_request_id(request_id)
                    .send()
                    .await
                    .map_err(|err| {
                        sso_error("sso-admin DescribePermissionSetProvisioningStatus", &err)
                    })?;
                let status = output.permission_set_provisioning_status();
                status_of(
                    status.and_then(|s| s.status()),
                    status.and_then(|s| s.failure_reason()),
                )
            }
        })
    }

    async fn inline_policy(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
    ) -> Result<Option<String>> {
        let output = self
            .client()
            .await?
            .get_inline_policy_for_permission_set()
            .instance_arn(instance_arn)
            .permission_set_arn(permission_set_arn)
            .send()
            .await
            .map_err(|err| sso_error("sso-admin GetInlinePolicyForPermissionSet", &err))?;
        // Identity Center answers an empty string for a permission set without one.
        Ok(output
            .inline_policy()
            .filter(|policy| !policy.trim().is_empty())
            .map(str::to_owned))
    }

    async fn put_inline_policy(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        document: &str,
    ) -> Result<()> {
        self.client()
            .await?
            .put_inline_policy_to_permission_set()
            .instance_arn(instance_arn)
            .permission_set_arn(permission_set_arn)
            .inline_policy(document)
            .send()
            .await
            .map_err(|err| sso_error("sso-admin PutInlinePolicyToPermissionSet", &err))?;
        Ok(())
    }

    async fn provision(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
        account: &str,
    ) -> Result<String> {
        let output = self
            .client()
            .await?
            .provision_permission_set()
            .instance_arn(instance_arn)
            .permission_set_arn(permission_set_arn)
            .target_id(account)
            .target_type(ProvisionTargetType::AwsAccount)
            .send()
            .await
            .map_err(|err| sso_error("sso-admin ProvisionPermissionSet", &err))?;
        output
            .permission_set_provisioning_status()
            .and_then(|status| status.request_id())
            .map(str::to_owned)
            .ok_or_else(|| Error::internal("ProvisionPermissionSet answered no request id"))
    }

    async fn pause(&self, delay: std::time::Duration) {
        tokio::time::sleep(delay).await;
    }

    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
