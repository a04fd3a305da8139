//! The Athena table over a trail bucket, and the partitions a runbook's window reads.
//!
//! [`TrailTable::ddl`] writes the `CREATE EXTERNAL TABLE` for the logs a trail delivers to
//! `s3://bucket/[prefix/]AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/`: the columns
//! the SQL compiler reads ([`crate::sql`], Athena's documented CloudTrail schema), and partition
//! projection on `account` (enum), `region` (enum) and `day` (date, `yyyy/MM/dd`), so no
//! partition is ever added by hand and a query reads only the folders its predicate names.
//!
//! [`Partitions::predicate`] is that predicate for a window: the day folders from the window's
//! start to its end plus the delivery slack, the same folders the S3 source lists
//! ([`crate::source::s3::delivery_days`]), so Athena and `--source s3://...` read the same
//! objects. Without it Athena reads every partition of the table (years of an Organization's
//! logs) for a one-hour window.
//!
//! Every value that reaches the text goes through [`crate::sql::quote`] after a shape check:
//! bucket, prefix, Organization id, account ids and Regions are refused unless they look like
//! what AWS issues, so a hostile value cannot reach the DDL or the location template.

use std::fmt::Write as _;

use time::Date;

use crate::params::Window;
use crate::source::s3::{day_folder, delivery_days};
use crate::sql::{SqlError, quote, table_name};

/// Why a table or partition set is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AthenaTableError {
    /// Not an S3 bucket name.
    #[error("`{0}` is not an S3 bucket name (3-63 lower-case letters, digits, `.` and `-`)")]
    InvalidBucket(String),
    /// A key prefix with characters the location template cannot hold.
    #[error("prefix `{0}`: only letters, digits and `/ . _ -` (no `AWSLogs`, no leading `/`)")]
    InvalidPrefix(String),
    /// Not an Organization id.
    #[error("`{0}` is not an Organization id (o- and 10 to 32 lower-case letters or digits)")]
    InvalidOrganization(String),
    /// Not a 12-digit account id.
    #[error("`{0}` is not a 12-digit account id")]
    InvalidAccount(String),
    /// Not a Region name.
    #[error("`{0}` is not a Region name (like eu-west-1)")]
    InvalidRegion(String),
    /// The enum projection needs at least one value.
    #[error("no {0} given: the table's projection lists every {0} it can read")]
    Empty(&'static str),
    /// Not a plain table name.
    #[error(transparent)]
    Sql(#[from] SqlError),
}

/// A trail bucket as an Athena table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailTable {
    /// `table` or `database.table`.
    pub table: String,
    /// The trail's bucket.
    pub bucket: String,
    /// Key prefix before `AWSLogs/` (empty, or with or without a trailing `/`).
    pub prefix: String,
    /// The Organization id of an Organization trail (its logs are under `AWSLogs/o-.../`).
    pub organization: Option<String>,
    /// The accounts the projection lists (an Organization's member accounts).
    pub accounts: Vec<String>,
    /// The Regions the projection lists.
    pub regions: Vec<String>,
    /// The first day the projection covers (the trail's creation, or the oldest log kept).
    pub first_day: Date,
}

/// The partition columns, in the table's order.
pub const PARTITION_COLUMNS: [&str; 3] = ["account", "region", "day"];

/// The commercial Regions (the default Region list of a generated table).
pub const COMMERCIAL_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// A column type of the table.
enum Type {
    String,
    Struct(&'static [(&'static str, Type)]),
    ArrayOfStruct(&'static [(&'static str, Type)]),
    MapOfStrings,
}

/// The table's columns: Athena's documented CloudTrail table, with `sourceidentity` in the
/// session context (the compiler reads it). The JSON-valued fields are strings, as there.
const COLUMNS: &[(&str, Type)] = &[
    ("eventversion", Type::String),
    (
        "useridentity",
        Type::Struct(&[
            ("type", Type::String),
            ("principalid", Type::String),
            ("arn", Type::String),
            ("accountid", Type::String),
            ("invokedby", Type::String),
            ("accesskeyid", Type::String),
            ("username", Type::String),
            (
                "onbehalfof",
                Type::Struct(&[("userid", Type::String), ("identitystorearn", Type::String)]),
            ),
            (
                "sessioncontext",
                Type::Struct(&[
                    (
                        "attributes",
                        Type::Struct(&[
                            ("mfaauthenticated", Type::String),
                            ("creationdate", Type::String),
                        ]),
                    ),
                    (
                        "sessionissuer",
                        Type::Struct(&[
                            ("type", Type::String),
                            ("principalid", Type::String),
                            ("arn", Type::String),
                            ("accountid", Type::String),
                            ("username", Type::String),
                        ]),
                    ),
                    ("ec2roledelivery", Type::String),
                    ("sourceidentity", Type::String),
                    (
                        "webidfederationdata",
                        Type::Struct(&[
                            ("federatedprovider", Type::String),
                            ("attributes", Type::MapOfStrings),
                        ]),
                    ),
                ]),
            ),
        ]),
    ),
    ("eventtime", Type::String),
    ("eventsource", Type::String),
    ("eventname", Type::String),
    ("awsregion", Type::String),
    ("sourceipaddress", Type::String),
    ("useragent", Type::String),
    ("errorcode", Type::String),
    ("errormessage", Type::String),
    ("requestparameters", Type::String),
    ("responseelements", Type::String),
    ("additionaleventdata", Type::String),
    ("requestid", Type::String),
    ("eventid", Type::String),
    ("readonly", Type::String),
    (
        "resources",
        Type::ArrayOfStruct(&[
            ("arn", Type::String),
            ("accountid", Type::String),
            ("type", Type::String),
        ]),
    ),
    ("eventtype", Type::String),
    ("apiversion", Type::String),
    ("recipientaccountid", Type::String),
    ("serviceeventdetails", Type::String),
    ("sharedeventid", Type::String),
    ("vpcendpointid", Type::String),
    ("vpcendpointaccountid", Type::String),
    ("eventcategory", Type::String),
    (
        "tlsdetails",
        Type::Struct(&[
            ("tlsversion", Type::String),
            ("ciphersuite", Type::String),
            ("clientprovidedhostheader", Type::String),
        ]),
    ),
];

fn write_type(out: &mut String, kind: &Type) {
    let members = |out: &mut String, members: &[(&str, Type)]| {
        for (index, (name, kind)) in members.iter().enumerate() {
            if index > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{name}: ");
            write_type(out, kind);
        }
    };
    match kind {
        Type::String => out.push_str("STRING"),
        Type::MapOfStrings => out.push_str("MAP<STRING, STRING>"),
        Type::Struct(fields) => {
            out.push_str("STRUCT<");
            members(out, fields);
            out.push('>');
        }
        Type::ArrayOfStruct(fields) => {
            out.push_str("ARRAY<STRUCT<");
            members(out, fields);
            out.push_str(">>");
        }
    }
}

/// Whether `path` (`useridentity.sessioncontext.sessionissuer.arn`, `resources.arn`) is a
/// string column or member of the table.
pub fn has_column(path: &str) -> bool {
    let mut fields = COLUMNS;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let Some((_, kind)) = fields.iter().find(|(name, _)| *name == segment) else {
            return false;
        };
        match kind {
            Type::String => return segments.peek().is_none(),
            Type::Struct(members) | Type::ArrayOfStruct(members) => fields = members,
            Type::MapOfStrings => return false,
        }
    }
    false
}

fn valid_bucket(bucket: &str) -> bool {
    let bytes = bucket.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !bucket.contains("..")
}

fn valid_prefix(prefix: &str) -> bool {
    !prefix.starts_with('/')
        && !prefix.contains("//")
        && !prefix
            .split('/')
            .any(|part| part == "AWSLogs" || part == "..")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
}

fn valid_organization(id: &str) -> bool {
    id.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// A 12-digit account id.
pub fn valid_account(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

/// A Region name: `xx-name-N` or `xx-name-name-N` (`us-gov-west-1`, `cn-northwest-1`).
pub fn valid_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1]
            .parse::<u8>()
            .is_ok_and(|number| number > 0)
}

fn checked_list<'a>(
    values: &'a [String],
    what: &'static str,
    valid: fn(&str) -> bool,
    error: fn(String) -> AthenaTableError,
) -> Result<Vec<&'a str>, AthenaTableError> {
    let mut list: Vec<&str> = Vec::with_capacity(values.len());
    for value in values {
        if !valid(value) {
            return Err(error(value.clone()));
        }
        if !list.contains(&value.as_str()) {
            list.push(value);
        }
    }
    if list.is_empty() {
        return Err(AthenaTableError::Empty(what));
    }
    Ok(list)
}

impl TrailTable {
    /// `s3://bucket/[prefix/]AWSLogs/[o-org/]`: where the account folders are.
    fn logs_root(&self) -> Result<String, AthenaTableError> {
        if !valid_bucket(&self.bucket) {
            return Err(AthenaTableError::InvalidBucket(self.bucket.clone()));
        }
        if !valid_prefix(&self.prefix) {
            return Err(AthenaTableError::InvalidPrefix(self.prefix.clone()));
        }
        let mut root = format!("s3://{}/", self.bucket);
        let prefix = self.prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            root.push_str(prefix);
            root.push('/');
        }
        root.push_str("AWSLogs/");
        if let Some(organization) = &self.organization {
            if !valid_organization(organization) {
                return Err(AthenaTableError::InvalidOrganization(organization.clone()));
            }
            root.push_str(organization);
            root.push('/');
        }
        Ok(root)
    }

    /// The `CREATE EXTERNAL TABLE` statement (Hive DDL, as Athena runs it).
    pub fn ddl(&self) -> Result<String, AthenaTableError> {
        let root = self.logs_root()?;
        let accounts = checked_list(
            &self.accounts,
            "account",
            valid_account,
            AthenaTableError::InvalidAccount,
        )?;
        let regions = checked_list(
            &self.regions,
            "Region",
            valid_region,
            AthenaTableError::InvalidRegion,
        )?;
        // Hive DDL quotes identifiers with backticks; table_name checked they are plain.
        let table = table_name(&self.table)?.replace('"', "`");
        let mut out = format!("CREATE EXTERNAL TABLE IF NOT EXISTS {table} (\n");
        for (index, (name, kind)) in COLUMNS.iter().enumerate() {
            let _ = write!(out, "  `{name}` ");
            write_type(&mut out, kind);
            out.push_str(if index + 1 < COLUMNS.len() {
                ",\n"
            } else {
                "\n"
            });
        }
        out.push_str(")\n");
        out.push_str(
            "COMMENT 'CloudTrail logs, partition projection on account, region and day (trailgate)'\n",
        );
        out.push_str("PARTITIONED BY (`account` STRING, `region` STRING, `day` STRING)\n");
        out.push_str("ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'\n");
        out.push_str("STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'\n");
        out.push_str("OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n");
        let _ = writeln!(out, "LOCATION {}", quote(&root)?);
        let first = day_folder(self.first_day);
        let properties = [
            ("projection.enabled", "true".to_owned()),
            ("projection.account.type", "enum".to_owned()),
            ("projection.account.values", accounts.join(",")),
            ("projection.region.type", "enum".to_owned()),
            ("projection.region.values", regions.join(",")),
            ("projection.day.type", "date".to_owned()),
            ("projection.day.format", "yyyy/MM/dd".to_owned()),
            ("projection.day.range", format!("{first},NOW")),
            ("projection.day.interval", "1".to_owned()),
            ("projection.day.interval.unit", "DAYS".to_owned()),
            (
                "storage.location.template",
                format!("{root}${{account}}/CloudTrail/${{region}}/${{day}}"),
            ),
        ];
        out.push_str("TBLPROPERTIES (\n");
        for (index, (key, value)) in properties.iter().enumerate() {
            let _ = write!(out, "  {} = {}", quote(key)?, quote(value)?);
            out.push_str(if index + 1 < properties.len() {
                ",\n"
            } else {
                "\n"
            });
        }
        out.push(')');
        Ok(out)
    }
}

/// The partitions of a table made by [`TrailTable::ddl`] that a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitions {
    /// How long after the window's end a file may still be delivered (the S3 source's
    /// `delivery_slack`).
    pub delivery_slack_seconds: i64,
    /// Only these accounts (every projected account when empty).
    pub accounts: Vec<String>,
    /// Only these Regions (every projected Region when empty).
    pub regions: Vec<String>,
}

impl Default for Partitions {
    fn default() -> Self {
        Partitions {
            delivery_slack_seconds: 3600,
            accounts: Vec::new(),
            regions: Vec::new(),
        }
    }
}

impl Partitions {
    /// The SQL condition on the partition columns for `window` (the same text for Athena and
    /// DuckDB: `yyyy/MM/dd` strings order as the days do).
    pub fn predicate(&self, window: Window) -> Result<String, SqlError> {
        let (first, last) =
            delivery_days(window, self.delivery_slack_seconds).ok_or_else(|| {
                SqlError::InvalidPartition("the window is outside the calendar".to_owned())
            })?;
        let day = |date: Date| quote(&day_folder(date));
        let mut parts = vec![format!(
            "\"day\" >= {} AND \"day\" <= {}",
            day(first)?,
            day(last)?
        )];
        let mut restrict = |column: &str, list: Result<Vec<&str>, AthenaTableError>| {
            let list = list
                .map_err(|error| SqlError::InvalidPartition(error.to_string()))?
                .into_iter()
                .map(quote)
                .collect::<Result<Vec<_>, _>>()?;
            parts.push(format!("\"{column}\" IN ({})", list.join(", ")));
            Ok::<_, SqlError>(())
        };
        if !self.accounts.is_empty() {
            restrict(
                "account",
                checked_list(
                    &self.accounts,
                    "account",
                    valid_account,
                    AthenaTableError::InvalidAccount,
                ),
            )?;
        }
        if !self.regions.is_empty() {
            restrict(
                "region",
                checked_list(
                    &self.regions,
                    "Region",
                    valid_region,
                    AthenaTableError::InvalidRegion,
                ),
            )?;
        }
        Ok(parts.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn table() -> TrailTable {
        TrailTable {
            table: "security.cloudtrail_org".to_owned(),
            bucket: "org-trail-logs".to_owned(),
            prefix: "trails/".to_owned(),
            organization: Some("o-a1b2c3d4e5".to_owned()),
            accounts: vec!["111122223333".to_owned(), "444455556666".to_owned()],
            regions: vec!["us-east-1".to_owned(), "eu-west-1".to_owned()],
            first_day: date!(2024 - 01 - 01),
        }
    }

    #[test]
    fn organization_trail_table_projects_account_region_and_day_under_the_org_folder() {
        let ddl = table().ddl().expect("valid table");
        assert!(
            ddl.starts_with("CREATE EXTERNAL TABLE IF NOT EXISTS `security`.`cloudtrail_org` (")
        );
        assert!(ddl.contains("LOCATION 's3://org-trail-logs/trails/AWSLogs/o-a1b2c3d4e5/'"));
        assert!(ddl.contains(
            "'storage.location.template' = 's3://org-trail-logs/trails/AWSLogs/o-a1b2c3d4e5/${account}/CloudTrail/${region}/${day}'"
        ));
        assert!(ddl.contains("'projection.account.values' = '111122223333,444455556666'"));
        assert!(ddl.contains("'projection.region.values' = 'us-east-1,eu-west-1'"));
        assert!(ddl.contains("'projection.day.range' = '2024/01/01,NOW'"));
        assert!(ddl.contains("PARTITIONED BY (`account` STRING, `region` STRING, `day` STRING)"));
    }

    #[test]
    fn single_account_trail_has_no_org_folder() {
        let mut table = table();
        table.organization = None;
        table.prefix = String::new();
        let ddl = table.ddl().expect("valid");
        assert!(ddl.contains("LOCATION 's3://org-trail-logs/AWSLogs/'"));
    }

    #[test]
    fn every_column_the_compiler_reads_is_declared() {
        for path in crate::sql::athena_columns() {
            assert!(
                has_column(&path),
                "`{path}` is read by the SQL but not in the DDL"
            );
        }
        assert!(!has_column("useridentity"));
        assert!(!has_column("useridentity.nothing"));
        assert!(has_column("resources.arn"));
    }

    #[test]
    fn hostile_names_are_refused() {
        let cases: Vec<(fn(&mut TrailTable), &str)> = vec![
            (|t| t.bucket = "Bad_Bucket".to_owned(), "bucket"),
            (|t| t.bucket = "b' OR '1".to_owned(), "bucket quote"),
            (
                |t| t.prefix = "a/${account}/".to_owned(),
                "template in prefix",
            ),
            (|t| t.prefix = "x'y".to_owned(), "quote in prefix"),
            (|t| t.prefix = "AWSLogs/".to_owned(), "AWSLogs in prefix"),
            (|t| t.organization = Some("o-short".to_owned()), "org"),
            (|t| t.accounts = vec!["1234".to_owned()], "account"),
            (|t| t.accounts.clear(), "no accounts"),
            (
                |t| t.regions = vec!["us-east-1,eu".to_owned()],
                "region list",
            ),
            (
                |t| t.regions = vec!["US-EAST-1".to_owned()],
                "upper-case region",
            ),
            (|t| t.table = "db.t; DROP".to_owned(), "table"),
        ];
        for (edit, label) in cases {
            let mut table = table();
            edit(&mut table);
            assert!(table.ddl().is_err(), "{label} was accepted");
        }
        assert!(valid_region("us-gov-west-1"));
        assert!(valid_region("cn-northwest-1"));
        assert!(!valid_region("us-east-0"));
    }

    #[test]
    fn the_predicate_names_the_window_days_plus_the_delivery_slack() {
        let window = Window {
            start: datetime!(2024-05-01 22:00 UTC).unix_timestamp(),
            end: datetime!(2024-05-02 23:30 UTC).unix_timestamp(),
        };
        let partitions = Partitions::default();
        assert_eq!(
            partitions.predicate(window).as_deref(),
            Ok("\"day\" >= '2024/05/01' AND \"day\" <= '2024/05/03'")
        );
        let narrow = Partitions {
            delivery_slack_seconds: 600,
            accounts: vec!["111122223333".to_owned()],
            regions: vec!["eu-west-1".to_owned(), "eu-west-1".to_owned()],
        };
        assert_eq!(
            narrow.predicate(window).as_deref(),
            Ok(
                "\"day\" >= '2024/05/01' AND \"day\" <= '2024/05/02' AND \"account\" IN ('111122223333') AND \"region\" IN ('eu-west-1')"
            )
        );
        let hostile = Partitions {
            accounts: vec!["1' OR '1'='1".to_owned()],
            ..Partitions::default()
        };
        assert!(matches!(
            hostile.predicate(window),
            Err(SqlError::InvalidPartition(message)) if message.contains("12-digit")
        ));
    }
}
