//! The catalog: the reviewed list of roles that can be requested, by whom, approved by whom.
//!
//! It is pushed to `CatalogTable` (`jitctl catalog push`; the template's `CATALOG` before the
//! first push) and loaded at cold start and on refresh (`trailgate-aws::catalog::CatalogSource`).
//! Loading validates every entry, so a function never runs with a catalog it cannot trust.

use crate::error::{Error, Result};
use crate::identity::{Principal, normalise_role_arn};
use crate::time::parse_duration;
use ::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Further principals of people, by person id. Every approver is a person (its `id`, its
    /// `arn`); a person listed here with an approver's id adds principals to that approver,
    /// and one with a new id is a requester who may call through more than one principal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<Person>,
    /// Roles (besides Identity Center's `AWSReservedSSO_*`) whose session name the identity
    /// provider sets, for example SAML roles whose trust policy pins `sts:RoleSessionName`.
    /// Sessions of any other role are refused as requesters: their caller chose the name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_session_roles: Vec<String>,
    pub entries: Vec<Entry>,
}

/// One person and the principals they call through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    /// IAM user ARNs or sessions of identity-provider roles, each naming exactly one identity.
    pub principals: Vec<String>,
    /// The person's Slack user, for decisions by Slack button: the ids Slack signs into every
    /// interaction (never a name, which users choose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackUser>,
}

/// A Slack user: workspace id (`T...`) and user id (`U...` or `W...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackUser {
    pub team_id: String,
    pub user_id: String,
}

impl SlackUser {
    fn check(&self, person: &str) -> Result<()> {
        let shaped = |text: &str, first: &[u8]| {
            (9..=15).contains(&text.len())
                && first.contains(&text.as_bytes()[0])
                && text
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        };
        if !shaped(&self.team_id, b"TE") || !shaped(&self.user_id, b"UW") {
            return Err(Error::internal(format!(
                "person `{person}`: slack needs team_id `T...` and user_id `U...` or `W...` (Slack's ids, upper-case letters and digits)"
            )));
        }
        Ok(())
    }
}

/// One requestable target: one role (`role_arn`), one role name in several accounts of the
/// Organization (`role_name` and `accounts`), or an IAM Identity Center permission set in
/// several accounts (`permission_set` and `accounts`); a request for the latter two names one
/// account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The role's name (after `role/`, with its path if it has one) in each of `accounts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    /// Account ids and OU ids (`ou-...`): the accounts whose `role_name` role this entry
    /// covers. An OU covers every account beneath it, at any depth, as Organizations says today.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// An Identity Center permission set, granted to the requester's Identity Center user in
    /// one of `accounts` by an account assignment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_set: Option<PermissionSetRef>,
    #[serde(default)]
    pub description: String,
    /// Longest grant a requester may ask for (ISO 8601 or short form).
    pub max_duration: String,
    /// How long approvers have before the request expires (default one hour).
    #[serde(default)]
    pub approval_window: Option<String>,
    pub approvers: Vec<Approver>,
    /// How many distinct approvals grant the request (M of N). The first deny ends it.
    #[serde(default = "one")]
    pub quorum: u32,
    /// ARN patterns (`*` wildcard) of the callers who may request this entry.
    pub requesters: Vec<String>,
    #[serde(default)]
    pub ticket_pattern: Option<String>,
    /// Emergency access: no approval, every approver and the alerts topic are told at once,
    /// the duration is capped at [`BREAK_GLASS_MAX_DURATION`], and the session stays flagged
    /// for review until an approver acknowledges it.
    #[serde(default)]
    pub break_glass: bool,
    /// How far ahead a request may ask its grant to start (`start_at`): ISO 8601, default
    /// [`DEFAULT_MAX_START_DELAY`], at most [`MAX_START_DELAY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_start_delay: Option<String>,
    /// People told of every request for this entry, with its context, who cannot approve it:
    /// their message has no link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Watcher>,
}

/// Someone told of an entry's requests who cannot decide them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watcher {
    /// The person's id, as elsewhere in the catalog.
    pub id: String,
    /// Where the message goes (the approvals topic's filter policy value, so the address
    /// must be subscribed like an approver's: `ApproverEmails`).
    pub email: String,
}

/// An IAM Identity Center permission set, by the ARNs Identity Center gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionSetRef {
    /// `arn:aws:sso:::instance/ssoins-<16>`.
    pub instance_arn: String,
    /// `arn:aws:sso:::permissionSet/ssoins-<16>/ps-<16>`, of that instance.
    pub permission_set_arn: String,
}

impl PermissionSetRef {
    /// Checks both ARNs against the forms Identity Center's API accepts, and that the
    /// permission set belongs to the instance.
    pub fn validate(&self) -> Result<()> {
        let instance = self
            .instance_arn
            .split_once(":sso:::instance/")
            .filter(|(prefix, id)| is_partition_prefix(prefix) && is_instance_id(id))
            .map(|(_, id)| id)
            .ok_or_else(|| {
                Error::internal(format!(
                    "`{}` is not an Identity Center instance ARN \
                     (`arn:aws:sso:::instance/ssoins-...`)",
                    self.instance_arn
                ))
            })?;
        let (prefix, rest) = self
            .permission_set_arn
            .split_once(":sso:::permissionSet/")
            .unwrap_or_default();
        let (of_instance, ps) = rest.split_once('/').unwrap_or_default();
        let ps_ok = ps.strip_prefix("ps-").is_some_and(|id| {
            id.len() == 16
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        });
        if !is_partition_prefix(prefix) || !is_instance_id(of_instance) || !ps_ok {
            return Err(Error::internal(format!(
                "`{}` is not a permission set ARN (`arn:aws:sso:::permissionSet/ssoins-.../ps-...`)",
                self.permission_set_arn
            )));
        }
        if of_instance != instance {
            return Err(Error::internal(format!(
                "permission set `{}` does not belong to instance `{}`",
                self.permission_set_arn, self.instance_arn
            )));
        }
        Ok(())
    }
}

/// `arn:aws` (or another partition).
fn is_partition_prefix(prefix: &str) -> bool {
    prefix.strip_prefix("arn:").is_some_and(|p| {
        p.starts_with("aws") && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    })
}

/// `ssoins-` or `ins-` and 16 letters, digits, `-` or `.`.
fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("ssoins-")
        .or_else(|| id.strip_prefix("ins-"))
        .is_some_and(|rest| {
            rest.len() == 16
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        })
}

/// Someone who may approve requests for an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    /// Stable id, used in links and the ledger.
    pub id: String,
    /// Where the approval e-mail goes (the SNS filter policy value).
    pub email: String,
    /// The approver's own AWS principal, used to keep them from approving their own request.
    pub arn: String,
}

fn one() -> u32 {
    1
}

/// Default approval window when an entry names none.
pub const DEFAULT_APPROVAL_WINDOW: Duration = Duration::hours(1);

/// How far ahead a scheduled grant may start when the entry does not say.
pub const DEFAULT_MAX_START_DELAY: Duration = Duration::days(7);

/// The furthest any entry lets a grant be scheduled: an approval given a month ahead is
/// already a standing permission in all but name.
pub const MAX_START_DELAY: Duration = Duration::days(30);

/// The longest grant a break-glass entry may give. Break-glass skips approval; the cap bounds
/// what an unreviewed session can do before it ends on its own.
pub const BREAK_GLASS_MAX_DURATION: Duration = Duration::hours(1);

impl Catalog {
    /// Parses and validates a catalog. `own_role_prefix` names trailgate's own roles
    /// (the stack-name prefix), which can never be requested.
    pub fn load(json: &str, own_role_prefix: &str) -> Result<Catalog> {
        Catalog::load_protected(json, &Protected::own_roles(own_role_prefix))
    }

    /// [`Catalog::load`] under the whole of what is never requestable: trailgate's own roles,
    /// the agent role, and the protected accounts (the management account, and the hub when
    /// its roles are not requestable).
    pub fn load_protected(json: &str, protected: &Protected) -> Result<Catalog> {
        let catalog: Catalog = serde_json::from_str(json)
            .map_err(|err| Error::internal(format!("the catalog is not valid: {err}")))?;
        catalog.validate_protected(protected)?;
        Ok(catalog)
    }

    /// Checks every entry; the first problem found is returned with the entry id.
    pub fn validate(&self, own_role_prefix: &str) -> Result<()> {
        self.validate_protected(&Protected::own_roles(own_role_prefix))
    }

    /// [`Catalog::validate`] under `protected`.
    pub fn validate_protected(&self, protected: &Protected) -> Result<()> {
        for role in &self.trusted_session_roles {
            normalise_role_arn(role).ok_or_else(|| {
                Error::internal(format!(
                    "trusted_session_roles: `{role}` is not an IAM role ARN without wildcards"
                ))
            })?;
        }
        let mut ids = HashSet::new();
        for entry in &self.entries {
            if !ids.insert(entry.id.as_str()) {
                return Err(Error::internal(format!(
                    "catalog entry `{}` is defined twice",
                    entry.id
                )));
            }
            entry.validate(protected).map_err(|err| {
                Error::internal(format!("catalog entry `{}`: {}", entry.id, err.message))
            })?;
        }
        self.validate_people()
    }

    /// One person, one id: every principal and every e-mail address belongs to exactly one
    /// person id, and an approver id means the same person in every entry. Otherwise two ids
    /// could share one inbox or one principal, and a quorum of two could be met by one person.
    fn validate_people(&self) -> Result<()> {
        let mut listed = HashSet::new();
        let mut slack_users: HashMap<(&str, &str), &str> = HashMap::new();
        for person in &self.people {
            check_person_id(&person.id)?;
            if !listed.insert(person.id.as_str()) {
                return Err(Error::internal(format!(
                    "person `{}` is listed twice",
                    person.id
                )));
            }
            if person.principals.is_empty() {
                return Err(Error::internal(format!(
                    "person `{}` has no principals",
                    person.id
                )));
            }
            if let Some(slack) = &person.slack {
                slack.check(&person.id)?;
                if let Some(other) =
                    slack_users.insert((&slack.team_id, &slack.user_id), &person.id)
                {
                    return Err(Error::internal(format!(
                        "Slack user `{}` of `{}` belongs to both `{other}` and `{}`: one person, one id",
                        slack.user_id, slack.team_id, person.id
                    )));
                }
            }
        }
        let mut email_of: HashMap<&str, String> = HashMap::new();
        let mut id_of_email: HashMap<String, &str> = HashMap::new();
        let mut id_of_key: HashMap<String, &str> = HashMap::new();
        for (id, email, principals) in self.people_and_principals() {
            if let Some(email) = email {
                let email = email.trim().to_ascii_lowercase();
                if let Some(known) = email_of.get(id)
                    && *known != email
                {
                    return Err(Error::internal(format!(
                        "person `{id}` has two e-mail addresses (`{known}`, `{email}`)"
                    )));
                }
                if let Some(other) = id_of_email.get(&email)
                    && *other != id
                {
                    return Err(Error::internal(format!(
                        "e-mail `{email}` belongs to both `{other}` and `{id}`: one person, one id"
                    )));
                }
                email_of.insert(id, email.clone());
                id_of_email.insert(email, id);
            }
            for arn in principals {
                let key = Principal::parse(arn)
                    .map_err(|err| Error::internal(format!("person `{id}`: {err}")))?
                    .key();
                if let Some(other) = id_of_key.get(&key)
                    && *other != id
                {
                    return Err(Error::internal(format!(
                        "principal `{arn}` belongs to both `{other}` and `{id}`: one person, one id"
                    )));
                }
                id_of_key.insert(key, id);
            }
        }
        Ok(())
    }

    /// Every (person id, e-mail, principals) the catalog states: each approver of each entry,
    /// each person an entry notifies, then each listed person.
    fn people_and_principals(&self) -> impl Iterator<Item = (&str, Option<&str>, Vec<&str>)> {
        let approvers = self
            .entries
            .iter()
            .flat_map(|entry| entry.approvers.iter())
            .map(|a| (a.id.as_str(), Some(a.email.as_str()), vec![a.arn.as_str()]));
        let watchers = self
            .entries
            .iter()
            .flat_map(|entry| entry.notify.iter())
            .map(|w| (w.id.as_str(), Some(w.email.as_str()), Vec::new()));
        let listed = self.people.iter().map(|p| {
            let principals = p.principals.iter().map(String::as_str).collect();
            (p.id.as_str(), p.email.as_deref(), principals)
        });
        approvers.chain(watchers).chain(listed)
    }

    /// Every (person id, principal ARN) the catalog states, approvers first, without repeats.
    pub fn principals(&self) -> Vec<(&str, &str)> {
        let mut seen = HashSet::new();
        self.people_and_principals()
            .flat_map(|(id, _, principals)| principals.into_iter().map(move |arn| (id, arn)))
            .filter(|pair| seen.insert(*pair))
            .collect()
    }

    /// The person a principal ARN belongs to, compared as principals (case and IAM path do not
    /// matter), or `None` for a principal the catalog does not list.
    pub fn person_of(&self, arn: &str) -> Option<&str> {
        let key = Principal::parse(arn).ok()?.key();
        self.people_and_principals()
            .find(|(_, _, principals)| {
                principals
                    .iter()
                    .any(|p| Principal::parse(p).is_ok_and(|p| p.key() == key))
            })
            .map(|(id, _, _)| id)
    }

    /// The person whose Slack user this is (workspace and user id as Slack signed them), or
    /// `None` when no person lists it: a Slack user is never a person by name.
    pub fn person_of_slack(&self, team_id: &str, user_id: &str) -> Option<&str> {
        self.people
            .iter()
            .find(|person| {
                person
                    .slack
                    .as_ref()
                    .is_some_and(|slack| slack.team_id == team_id && slack.user_id == user_id)
            })
            .map(|person| person.id.as_str())
    }

    /// The person a requester is, or why the caller cannot be one (a 403 naming the reason).
    /// A listed principal is its person. An unlisted IAM user is a person of its own (IAM user
    /// names are unique), named by its normalised ARN, which no catalog id can equal (ids have
    /// no `:`). A session is accepted only where the identity provider set its name, and only
    /// when listed: its name alone says nothing about the approvers it might be.
    pub fn resolve_requester(&self, arn: &str) -> Result<String> {
        let principal = Principal::parse(arn).map_err(|err| {
            Error::forbidden(format!("trailgate cannot tell who is calling: {err}"))
        })?;
        let trusted: Vec<String> = self
            .trusted_session_roles
            .iter()
            .filter_map(|role| normalise_role_arn(role))
            .collect();
        if !principal.name_is_set_by_identity_provider(&trusted) {
            return Err(Error::forbidden(format!(
                "`{arn}` is a role session whose name its caller chose, so it names no person; \
                 call through an IAM Identity Center session, your IAM user, or a role the \
                 catalog lists in `trusted_session_roles`"
            )));
        }
        if let Some(person) = self.person_of(arn) {
            return Ok(person.to_owned());
        }
        match principal {
            Principal::IamUser { .. } | Principal::IdentityCenterUser { .. } => Ok(principal.key()),
            Principal::AssumedRole { .. } => Err(Error::forbidden(format!(
                "`{arn}` is not a principal of any person in the catalog; sessions must be \
                 listed under `people` so that nobody can approve their own request"
            ))),
        }
    }

    /// The person an Identity Center user is, once Identity Center has said which user a
    /// session belongs to (`user_arn`, [`crate::identity::identity_center_user_arn`]): the
    /// person listing that user, else the person listing the session, else the user itself, a
    /// person of its own as an unlisted IAM user is (the id is immutable and unique).
    pub fn resolve_identity_center_user(&self, session_arn: &str, user_arn: &str) -> String {
        self.person_of(user_arn)
            .or_else(|| self.person_of(session_arn))
            .map_or_else(
                || {
                    Principal::parse(user_arn)
                        .map(|p| p.key())
                        .unwrap_or_else(|_| user_arn.to_owned())
                },
                str::to_owned,
            )
    }

    /// Whether `person` is the requester of `request`: the person recorded at submission, or
    /// the person today's catalog says the requester's principal belongs to.
    pub fn is_requester(&self, request: &crate::request::AccessRequest, person: &str) -> bool {
        request.requester_person == person
            || self.person_of(&request.requester) == Some(person)
            || request
                .assignment
                .as_ref()
                .is_some_and(|a| self.person_of(&a.user_arn()) == Some(person))
    }

    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.id == id)
    }
}

impl Entry {
    fn validate(&self, protected: &Protected) -> Result<()> {
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::internal(
                "id must be 1-64 letters, digits, `-` or `_`",
            ));
        }
        self.validate_target(protected)?;
        self.max_duration()?;
        self.approval_window()?;
        self.max_start_delay()?;
        if self.break_glass && self.max_duration()? > BREAK_GLASS_MAX_DURATION {
            // Break-glass skips approval, so its compensating controls include a short cap:
            // an entry asking for more is refused at load rather than silently shortened.
            return Err(Error::internal(format!(
                "a break-glass entry may grant at most {} (max_duration is {})",
                crate::time::format_duration(BREAK_GLASS_MAX_DURATION),
                self.max_duration
            )));
        }
        if self.approvers.is_empty() {
            return Err(Error::internal("at least one approver is required"));
        }
        let mut approver_ids = HashSet::new();
        for approver in &self.approvers {
            check_person_id(&approver.id)?;
            if !approver_ids.insert(approver.id.as_str()) {
                return Err(Error::internal(format!(
                    "approver `{}` is listed twice",
                    approver.id
                )));
            }
            if !approver.email.contains('@') {
                return Err(Error::internal(format!(
                    "approver `{}` has no valid e-mail",
                    approver.id
                )));
            }
            Principal::parse(&approver.arn)
                .map_err(|err| Error::internal(format!("approver `{}`: {err}", approver.id)))?;
        }
        let mut watcher_ids = HashSet::new();
        for watcher in &self.notify {
            check_person_id(&watcher.id)?;
            if approver_ids.contains(watcher.id.as_str()) {
                return Err(Error::internal(format!(
                    "`{}` approves this entry: `notify` is for people who cannot",
                    watcher.id
                )));
            }
            if !watcher_ids.insert(watcher.id.as_str()) {
                return Err(Error::internal(format!(
                    "`{}` is listed twice in notify",
                    watcher.id
                )));
            }
            if !watcher.email.contains('@') {
                return Err(Error::internal(format!(
                    "notify `{}` has no valid e-mail",
                    watcher.id
                )));
            }
        }
        if self.quorum == 0 || self.quorum as usize > self.approvers.len() {
            return Err(Error::internal(format!(
                "quorum {} must be between 1 and the number of approvers ({})",
                self.quorum,
                self.approvers.len()
            )));
        }
        if self.requesters.is_empty() {
            return Err(Error::internal(
                "at least one requester pattern is required",
            ));
        }
        if let Some(pattern) = &self.ticket_pattern {
            regex::Regex::new(pattern)
                .map_err(|err| Error::internal(format!("ticket_pattern: {err}")))?;
        }
        Ok(())
    }

    pub fn max_duration(&self) -> Result<Duration> {
        parse_duration(&self.max_duration).ok_or_else(|| {
            Error::internal(format!(
                "max_duration `{}` is not a duration",
                self.max_duration
            ))
        })
    }

    pub fn approval_window(&self) -> Result<Duration> {
        match &self.approval_window {
            None => Ok(DEFAULT_APPROVAL_WINDOW),
            Some(text) => parse_duration(text).ok_or_else(|| {
                Error::internal(format!("approval_window `{text}` is not a duration"))
            }),
        }
    }

    /// How far ahead this entry's grants may be scheduled (`start_at`).
    pub fn max_start_delay(&self) -> Result<Duration> {
        let Some(text) = &self.max_start_delay else {
            return Ok(DEFAULT_MAX_START_DELAY);
        };
        let delay = parse_duration(text).ok_or_else(|| {
            Error::internal(format!("max_start_delay `{text}` is not a duration"))
        })?;
        if delay > MAX_START_DELAY {
            return Err(Error::internal(format!(
                "max_start_delay `{text}` is longer than {}",
                crate::time::format_duration(MAX_START_DELAY)
            )));
        }
        Ok(delay)
    }

    /// The role half of the entry: `role_arn` alone, or `role_name` with `accounts`; and nothing
    /// [`Protected`] names.
    fn validate_target(&self, protected: &Protected) -> Result<()> {
        if let Some(permission_set) = &self.permission_set {
            if self.role_arn.is_some() || self.role_name.is_some() {
                return Err(Error::internal(
                    "an entry names a role or a `permission_set`, not both",
                ));
            }
            permission_set.validate()?;
            // A permission set has no role name of ours to refuse; its accounts are checked
            // as any entry's are.
            return self.validate_accounts_under(protected, "", "`permission_set`");
        }
        match (&self.role_arn, &self.role_name) {
            (Some(arn), None) => {
                if !self.accounts.is_empty() {
                    return Err(Error::internal(
                        "`accounts` goes with `role_name`, not with `role_arn`",
                    ));
                }
                let account = role_account(arn)
                    .ok_or_else(|| Error::internal(format!("`{arn}` is not an IAM role ARN")))?;
                let name = role_name(arn).unwrap_or_default();
                protected.check_role(account, name)
            }
            (None, Some(path_and_name)) => {
                let name = path_and_name.rsplit('/').next().unwrap_or_default();
                if name.is_empty()
                    || path_and_name.len() > 512
                    || !path_and_name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
                {
                    return Err(Error::internal(format!(
                        "role_name `{path_and_name}` is not an IAM role name"
                    )));
                }
                self.validate_accounts_under(protected, name, "`role_name`")
            }
            (Some(_), Some(_)) => Err(Error::internal(
                "an entry names either `role_arn` or `role_name` with `accounts`, not both",
            )),
            (None, None) => Err(Error::internal(
                "an entry needs `role_arn`, `role_name` with `accounts`, or `permission_set` \
                 with `accounts`",
            )),
        }
    }

    /// `accounts` is non-empty, each an account id or an OU id, none twice, and none a
    /// protected account (for the role `name`, or any target when `name` is empty).
    fn validate_accounts_under(&self, protected: &Protected, name: &str, what: &str) -> Result<()> {
        if self.accounts.is_empty() {
            return Err(Error::internal(format!(
                "an entry with {what} names the accounts it covers in `accounts`"
            )));
        }
        let mut seen = HashSet::new();
        for account in &self.accounts {
            if !is_account_id(account) && !is_ou_id(account) {
                return Err(Error::internal(format!(
                    "`{account}` in `accounts` is neither a 12-digit account id nor an \
                     OU id (`ou-...`)"
                )));
            }
            if !seen.insert(account.as_str()) {
                return Err(Error::internal(format!(
                    "`{account}` is listed twice in `accounts`"
                )));
            }
            if is_account_id(account) {
                protected.check_role(account, name)?;
            } else {
                protected.check_role("", name)?;
            }
        }
        Ok(())
    }

    /// Whether the entry covers `account` (listed by id, or under a listed OU of
    /// `ous_of_account`): for a permission-set entry, where the account is the whole target.
    pub fn covers_account(&self, account: &str, ous_of_account: &[String]) -> bool {
        is_account_id(account)
            && self
                .accounts
                .iter()
                .any(|listed| listed == account || ous_of_account.iter().any(|ou| ou == listed))
    }

    /// Whether a recorded assignment is still one this entry may grant: its permission set,
    /// in an account it lists or (OU membership being Organizations' answer at submission)
    /// under one of its OUs.
    pub fn may_grant_assignment(&self, assignment: &crate::request::Assignment) -> bool {
        let Some(permission_set) = &self.permission_set else {
            return false;
        };
        permission_set.instance_arn == assignment.instance_arn
            && permission_set.permission_set_arn == assignment.permission_set_arn
            && is_account_id(&assignment.account)
            && (self.accounts.contains(&assignment.account)
                || self.accounts.iter().any(|a| is_ou_id(a)))
    }

    /// The role this entry grants in `account`, if it covers that account by name. An entry
    /// over OUs says `None` for accounts it does not list: OU membership is Organizations'
    /// answer ([`Entry::role_in`] with the account's OUs).
    pub fn role_in(&self, account: &str, ous_of_account: &[String]) -> Option<String> {
        match (&self.role_arn, &self.role_name) {
            (Some(arn), _) => (role_account(arn) == Some(account)).then(|| arn.clone()),
            (None, Some(name)) => {
                let covered = self.accounts.iter().any(|listed| {
                    listed == account || ous_of_account.iter().any(|ou| ou == listed)
                });
                (covered && is_account_id(account))
                    .then(|| format!("arn:aws:iam::{account}:role/{name}"))
            }
            (None, None) => None,
        }
    }

    /// Whether a recorded role is still one this entry may grant. OU membership was
    /// Organizations' answer at submission, so an OU entry keeps a role of its name whose
    /// account it does not list by id.
    pub fn may_grant(&self, role_arn: &str) -> bool {
        match (&self.role_arn, &self.role_name) {
            (Some(arn), _) => arn == role_arn,
            (None, Some(name)) => {
                let Some(account) = role_account(role_arn) else {
                    return false;
                };
                let listed = self.accounts.iter().any(|a| a == account);
                let through_ou = self.accounts.iter().any(|a| is_ou_id(a));
                format!("arn:aws:iam::{account}:role/{name}") == role_arn && (listed || through_ou)
            }
            (None, None) => false,
        }
    }

    /// Whether the entry covers one account only (a `role_arn`), so a request need not name it.
    pub fn single_role(&self) -> Option<&str> {
        self.role_arn.as_deref()
    }

    /// What the entry names as its target, for messages: the ARN, or `name in accounts`.
    pub fn target_label(&self) -> String {
        if let Some(permission_set) = &self.permission_set {
            return format!(
                "permission set {} in {}",
                permission_set.permission_set_arn,
                self.accounts.join(", ")
            );
        }
        match (&self.role_arn, &self.role_name) {
            (Some(arn), _) => arn.clone(),
            (None, Some(name)) => format!("{name} in {}", self.accounts.join(", ")),
            (None, None) => String::new(),
        }
    }

    /// Whether `caller_arn` matches one of the entry's requester patterns.
    pub fn allows_requester(&self, caller_arn: &str) -> bool {
        self.requesters
            .iter()
            .any(|pattern| glob_match(pattern, caller_arn))
    }

    pub fn approver(&self, id: &str) -> Option<&Approver> {
        self.approvers.iter().find(|approver| approver.id == id)
    }

    /// What a requester is shown about the entry (`GET /catalog`): never the approvers'
    /// ARNs or e-mail addresses, which are nobody's business but the stack's.
    pub fn public_view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "role_arn": self.role_arn,
            "role_name": self.role_name,
            "accounts": self.accounts,
            "permission_set": self.permission_set,
            "description": self.description,
            "max_duration": self.max_duration,
            "approval_window": self.approval_window.as_deref().unwrap_or("PT1H"),
            "quorum": self.quorum,
            "ticket_pattern": self.ticket_pattern,
            "break_glass": self.break_glass,
            "max_start_delay": self.max_start_delay.as_deref().unwrap_or("P7D"),
        })
    }
}

impl Catalog {
    /// The entries `caller_arn` may request, in catalog order.
    pub fn requestable_by<'c>(&'c self, caller_arn: &str) -> Vec<&'c Entry> {
        self.entries
            .iter()
            .filter(|entry| entry.allows_requester(caller_arn))
            .collect()
    }
}

/// What no catalog entry may name and no grant may reach, whatever the catalog says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protected {
    /// The prefix of trailgate's own role names (the stack name and `-`).
    pub own_role_prefix: String,
    /// The member stack's agent role name (`trailgate-agent`), in every account.
    pub agent_role_name: String,
    /// The hub's own account (where trailgate runs); empty where it is not configured, which
    /// treats every role as the hub's (a single-account deployment).
    pub hub_account: String,
    /// Accounts none of whose roles are requestable: the Organization's management account,
    /// and the hub's own account unless its roles are requestable (a single-account
    /// deployment).
    pub accounts: Vec<String>,
}

impl Protected {
    /// Only trailgate's own roles: a deployment without an Organization.
    pub fn own_roles(own_role_prefix: &str) -> Protected {
        Protected {
            own_role_prefix: own_role_prefix.to_owned(),
            ..Protected::default()
        }
    }

    /// Refuses the role `name` in `account` (empty: any account, for OU entries) when it is
    /// one of trailgate's own, the agent role, or in a protected account.
    pub fn check_role(&self, account: &str, name: &str) -> Result<()> {
        if !self.agent_role_name.is_empty() && name == self.agent_role_name {
            return Err(Error::internal(format!(
                "`{name}` is trailgate's agent role, which is never requestable"
            )));
        }
        if !self.own_role_prefix.is_empty() && name.starts_with(&self.own_role_prefix) {
            return Err(Error::internal(format!(
                "`{name}` is one of trailgate's own roles"
            )));
        }
        if !account.is_empty() && self.accounts.iter().any(|a| a == account) {
            return Err(Error::internal(format!(
                "account {account} is protected (the Organization's management account, or \
                 the hub's own account): none of its roles is requestable"
            )));
        }
        Ok(())
    }
}

/// A 12-digit AWS account id.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// An Organizations OU id: `ou-` + 4-32 lower-case letters or digits + `-` + 8-32 more.
pub fn is_ou_id(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("ou-") else {
        return false;
    };
    let Some((root, unit)) = rest.split_once('-') else {
        return false;
    };
    let ok = |part: &str, min: usize| {
        (min..=32).contains(&part.len())
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    ok(root, 4) && ok(unit, 8)
}

/// The account of an IAM role ARN.
pub fn role_account(role_arn: &str) -> Option<&str> {
    role_name(role_arn)?;
    role_arn.split(':').nth(4)
}

/// A person id (an approver's or a listed person's): 1-64 letters, digits, `-_.@`. No `:`, so
/// it never equals the normalised ARN that names an unlisted IAM user.
fn check_person_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(Error::internal(format!(
            "person id `{id}` must be 1-64 letters, digits, `-_.@`"
        )));
    }
    Ok(())
}

/// The role name of an IAM role ARN (`arn:aws:iam::123:role/path/name` → `name`).
pub fn role_name(role_arn: &str) -> Option<&str> {
    let mut parts = role_arn.splitn(6, ':');
    let (arn, _partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn != "arn" || service != "iam" || account.is_empty() {
        return None;
    }
    let path_and_name = resource.strip_prefix("role/")?;
    let name = path_and_name.rsplit('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(index) => rest = &rest[index + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_catalog_json;

    #[test]
    fn sample_catalog_loads() {
        let catalog = Catalog::load(&sample_catalog_json(), "trailgate-").unwrap();
        let entry = catalog.entry("sandbox-admin").unwrap();
        assert!(entry.allows_requester("arn:aws:iam::123456789012:user/alice"));
        assert!(!entry.allows_requester("arn:aws:iam::999999999999:user/alice"));
        assert_eq!(entry.max_duration().unwrap(), Duration::hours(4));
    }

    #[test]
    fn own_roles_and_bad_entries_are_rejected() {
        let own = sample_catalog_json()
            .replace("role/sample-target-trailgate", "role/trailgate-GrantRole");
        let err = Catalog::load(&own, "trailgate-").unwrap_err();
        assert!(err.message.contains("trailgate's own roles"), "{err}");

        let quorum = sample_catalog_json().replace("\"quorum\": 1", "\"quorum\": 3");
        assert!(
            Catalog::load(&quorum, "trailgate-")
                .unwrap_err()
                .message
                .contains("quorum")
        );

        let unknown = sample_catalog_json().replace("\"quorum\": 1", "\"quorum\": 1, \"color\": 1");
        assert!(Catalog::load(&unknown, "trailgate-").is_err());

        // The sample entry allows four hours: too long for break-glass.
        let glass =
            sample_catalog_json().replace("\"break_glass\": false", "\"break_glass\": true");
        let err = Catalog::load(&glass, "trailgate-").unwrap_err();
        assert!(
            err.message
                .contains("break-glass entry may grant at most PT1H"),
            "{err}"
        );
        let capped = glass.replace("\"PT4H\"", "\"PT1H\"");
        assert!(Catalog::load(&capped, "trailgate-").unwrap().entries[0].break_glass);
    }

    #[test]
    fn one_person_one_id() {
        let refused = |from: &str, to: &str, why: &str| {
            let json = sample_catalog_json().replace(from, to);
            assert_ne!(json, sample_catalog_json(), "{from} is not in the sample");
            let err = Catalog::load(&json, "trailgate-").unwrap_err();
            assert!(err.message.contains(why), "{from} -> {to}: {err}");
        };
        // Two approver ids, one inbox: a 2-of-2 quorum would be met from one mailbox.
        refused(
            "carol@example.com",
            "Bob@Example.com",
            "belongs to both `bob` and `carol`",
        );
        // Two approver ids, one IAM user spelled two ways.
        refused(
            "user/carol",
            "user/ops/BOB",
            "belongs to both `bob` and `carol`",
        );
        // An approver principal must name one identity.
        refused("user/carol", "user/*", "has a wildcard");
        refused(":user/carol", ":role/carol", "is not an IAM user");
        // A listed person cannot take an approver's principal.
        let json = sample_catalog_json().replacen(
            r#"{"entries""#,
            r#"{"people": [{"id": "mallory", "principals": ["arn:aws:iam::123456789012:user/Bob"]}], "entries""#,
            1,
        );
        let err = Catalog::load(&json, "trailgate-").unwrap_err();
        assert!(
            err.message.contains("belongs to both `bob` and `mallory`"),
            "{err}"
        );
        let json = sample_catalog_json().replacen(
            r#"{"entries""#,
            r#"{"trusted_session_roles": ["arn:aws:iam::123456789012:role/*"], "entries""#,
            1,
        );
        assert!(Catalog::load(&json, "trailgate-").is_err());
    }

    #[test]
    fn an_approver_id_is_one_person_in_every_entry() {
        let catalog = Catalog::load(&sample_catalog_json(), "trailgate-").unwrap();
        let mut second = catalog.entries[0].clone();
        second.id = "second".into();
        second.approvers[0].email = "bob@elsewhere.example".into();
        let mut two = catalog.clone();
        two.entries.push(second.clone());
        let err = two.validate("trailgate-").unwrap_err();
        assert!(
            err.message
                .contains("person `bob` has two e-mail addresses"),
            "{err}"
        );
        second.approvers[0].email = "bob@example.com".into();
        second.approvers[0].arn = "arn:aws:iam::123456789012:user/robert".into();
        let mut same_email = catalog.clone();
        same_email.entries.push(second);
        // bob's own address under two principals is fine; it is still one person.
        same_email.validate("trailgate-").unwrap();
        assert_eq!(
            same_email.person_of("arn:aws:iam::123456789012:user/Robert"),
            Some("bob")
        );
    }

    #[test]
    fn requesters_resolve_to_people() {
        let catalog = Catalog::load(&sample_catalog_json(), "trailgate-").unwrap();
        assert_eq!(
            catalog
                .resolve_requester("arn:aws:iam::123456789012:user/Carol")
                .unwrap(),
            "carol"
        );
        // An unlisted IAM user is a person of its own, named so no catalog id can equal it.
        let alice = catalog
            .resolve_requester("arn:aws:iam::123456789012:user/team/Alice")
            .unwrap();
        assert_eq!(alice, "arn:aws:iam::123456789012:user/alice");
        for arn in [
            "arn:aws:sts::123456789012:assumed-role/shared/bob",
            "arn:aws:iam::123456789012:user/*",
            "arn:aws:iam::123456789012:root",
        ] {
            let err = catalog.resolve_requester(arn).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::Forbidden, "{arn}");
        }
    }

    #[test]
    fn a_slack_user_is_one_listed_person_by_the_ids_slack_signs() {
        let with_slack = |people: serde_json::Value| {
            let mut json: serde_json::Value = serde_json::from_str(&sample_catalog_json()).unwrap();
            json["people"] = people;
            Catalog::load(&json.to_string(), "trailgate-")
        };
        let person = |id: &str, arn: &str, user: &str| serde_json::json!({"id": id, "principals": [arn], "slack": {"team_id": "T0TEAM0001", "user_id": user}});
        let catalog = with_slack(serde_json::json!([
            person("bob", "arn:aws:iam::123456789012:user/bob", "U0BOB00001"),
            person(
                "carol",
                "arn:aws:iam::123456789012:user/carol",
                "W0CAROL001"
            ),
        ]))
        .unwrap();
        assert_eq!(
            catalog.person_of_slack("T0TEAM0001", "U0BOB00001"),
            Some("bob")
        );
        assert_eq!(
            catalog.person_of_slack("T0TEAM0001", "W0CAROL001"),
            Some("carol")
        );
        // Another workspace's user with the same user id is nobody here.
        assert_eq!(catalog.person_of_slack("T0OTHER001", "U0BOB00001"), None);
        assert_eq!(catalog.person_of_slack("T0TEAM0001", "bob"), None);
        // One Slack user, one person.
        let err = with_slack(serde_json::json!([
            person("bob", "arn:aws:iam::123456789012:user/bob", "U0BOB00001"),
            person(
                "carol",
                "arn:aws:iam::123456789012:user/carol",
                "U0BOB00001"
            ),
        ]))
        .unwrap_err();
        assert!(
            err.message.contains("one person, one id"),
            "{}",
            err.message
        );
        // Slack's id shapes only: a name is not an id.
        for user in ["bob", "u0bob00001", "U0BOB", "X0BOB00001"] {
            let err = with_slack(serde_json::json!([person(
                "bob",
                "arn:aws:iam::123456789012:user/bob",
                user
            )]))
            .unwrap_err();
            assert!(
                err.message.contains("slack needs"),
                "{user}: {}",
                err.message
            );
        }
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match(
            "arn:aws:iam::1:user/*",
            "arn:aws:iam::1:user/alice"
        ));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abde"));
        assert!(!glob_match(
            "arn:aws:iam::1:user/alice",
            "arn:aws:iam::1:user/alice2"
        ));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn role_names() {
        assert_eq!(
            role_name("arn:aws:iam::123:role/path/to/admin"),
            Some("admin")
        );
        assert_eq!(role_name("arn:aws:iam::123:user/admin"), None);
        assert_eq!(role_name("not-an-arn"), None);
    }

    #[test]
    fn a_permission_set_entry_is_checked_like_a_role_entry_and_names_its_accounts() {
        let base = crate::testing::identity_center_catalog();
        let entry = base.entry("prod-admin-ps").unwrap();
        assert!(entry.covers_account(crate::testing::PS_ACCOUNT, &[]));
        assert!(!entry.covers_account("222222222222", &[]));
        assert_eq!(entry.single_role(), None, "a request names its account");
        assert!(entry.public_view()["permission_set"]["permission_set_arn"].is_string());
        let json = serde_json::to_value(&base).unwrap();
        let broken = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut json = json.clone();
            edit(&mut json["entries"][0]);
            Catalog::load(&json.to_string(), "trailgate-")
                .unwrap_err()
                .message
        };
        let message = broken(&|e| e["accounts"] = serde_json::json!([]));
        assert!(message.contains("names the accounts"), "{message}");
        let message = broken(&|e| e["role_arn"] = "arn:aws:iam::123456789012:role/x".into());
        assert!(message.contains("not both"), "{message}");
        let message =
            broken(&|e| e["permission_set"]["instance_arn"] = "arn:aws:sso:::instance/nope".into());
        assert!(
            message.contains("not an Identity Center instance ARN"),
            "{message}"
        );
        let message = broken(&|e| {
            e["permission_set"]["permission_set_arn"] =
                "arn:aws:sso:::permissionSet/ssoins-0000000000000000/ps-0123456789abcdef".into()
        });
        assert!(message.contains("does not belong to instance"), "{message}");
        let message = broken(&|e| e["permission_set"]["permission_set_arn"] = "ps-1".into());
        assert!(message.contains("not a permission set ARN"), "{message}");
        let protected = Protected {
            accounts: vec![crate::testing::PS_ACCOUNT.into()],
            ..Protected::default()
        };
        let err = Catalog::load_protected(&json.to_string(), &protected).unwrap_err();
        assert!(err.message.contains("is protected"), "{}", err.message);
    }
}
