//! Translates the decision routes. The public link routes: GET only shows the confirm page
//! (e-mail link scanners prefetch GETs); POST decides. Both verify the signed link first; every
//! refusal is a plain page with a 4xx status that changes nothing. The signed route
//! `POST /requests/{id}/decision` (`AWS_IAM`, used by `jitctl approve|deny`) identifies the
//! approver by the caller's ARN and answers in JSON like the other API routes.

use crate::page;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use serde::Deserialize;
use trailgate_aws::apigw;
use trailgate_domain::error::{Error, ErrorKind, Result};
use trailgate_domain::ledger::Origin;
use trailgate_domain::link::{LinkKey, LinkParams};
use trailgate_domain::ports::{Ledger, Workflow};
use trailgate_domain::request::is_request_id;
use trailgate_domain::service;

pub struct Deps<L, W> {
    pub ledger: L,
    pub workflow: W,
    pub key: LinkKey,
    pub catalog: trailgate_aws::catalog::CatalogSource,
}

/// The API Gateway resource of the signed route; every other resource is a link route.
pub const SIGNED_ROUTE: &str = "/requests/{id}/decision";

/// The body of the signed route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: String,
    #[serde(default)]
    comment: Option<String>,
}

pub async fn handle<L: Ledger, W: Workflow>(
    request: ApiGatewayProxyRequest,
    deps: &Deps<L, W>,
) -> ApiGatewayProxyResponse {
    if request.resource.as_deref() == Some(SIGNED_ROUTE) {
        return apigw::respond(signed(&request, deps).await);
    }
    match route(&request, deps).await {
        Ok(response) => response,
        Err(err) => {
            if matches!(err.kind, ErrorKind::Internal | ErrorKind::Retryable) {
                tracing::error!(kind = err.kind.name(), message = %err.message, "decision failed");
                return apigw::html(
                    err.kind.http_status(),
                    page::refusal(
                        "Something went wrong",
                        "trailgate could not handle this; the error was logged. Try again in a moment.",
                    ),
                );
            }
            tracing::info!(kind = err.kind.name(), message = %err.message, "decision refused");
            let title = if err.kind == ErrorKind::Conflict {
                "Nothing to do"
            } else {
                "This link cannot be used"
            };
            apigw::html(err.kind.http_status(), page::refusal(title, &err.message))
        }
    }
}

/// A decision is posted by the confirm page's own form, so a POST must look like one: the form
/// encoding (not `text/plain`, which a cross-site form may send without a CORS check), and,
/// where the browser says where it came from, from this very site. A link in another site's
/// page or form then cannot make an approver's browser decide.
fn check_form_post(request: &ApiGatewayProxyRequest) -> Result<()> {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    let form = header("content-type").is_some_and(|value| {
        value.split(';').next().is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form {
        return Err(Error::forbidden(
            "a decision is sent by the confirm page's form (application/x-www-form-urlencoded)",
        ));
    }
    let another_site =
        || Error::forbidden("a decision must be sent from the confirm page, not from another site");
    // Every current browser says where a request comes from in Sec-Fetch-Site.
    if let Some(site) = header("sec-fetch-site") {
        return if site.eq_ignore_ascii_case("same-origin") {
            Ok(())
        } else {
            Err(another_site())
        };
    }
    // Older ones only send Origin. The confirm page's `Referrer-Policy: no-referrer` makes a
    // browser send `Origin: null` for its own form, which then says nothing and is refused:
    // without Sec-Fetch-Site it cannot be told from another site's page.
    if let Some(origin) = header("origin") {
        let host = header("host").unwrap_or_default();
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        if host.is_empty() || origin_host != Some(host) {
            return Err(another_site());
        }
    }
    Ok(())
}

async fn route<L: Ledger, W: Workflow>(
    request: &ApiGatewayProxyRequest,
    deps: &Deps<L, W>,
) -> Result<ApiGatewayProxyResponse> {
    let id =
        apigw::path_param(request, "id").map_err(|_| Error::forbidden("this link is not valid"))?;
    if !is_request_id(id) {
        return Err(Error::forbidden("this link is not valid"));
    }
    let now = time::OffsetDateTime::now_utc();
    match request.http_method.as_str() {
        "GET" => {
            let pairs: Vec<(String, String)> = ["a", "e", "h", "s"]
                .iter()
                .filter_map(|k| {
                    request
                        .query_string_parameters
                        .first(k)
                        .map(|v| ((*k).to_owned(), v.to_owned()))
                })
                .collect();
            let link =
                LinkParams::from_pairs(id, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            let review = service::review(
                &deps.ledger,
                &*deps.catalog.current().await,
                &deps.key,
                &link,
                now,
            )
            .await?;
            Ok(apigw::html(200, page::confirm(&review, &link)))
        }
        "POST" => {
            check_form_post(request)?;
            let body = apigw::body_bytes(request)?;
            let pairs = parse_form(&String::from_utf8_lossy(&body));
            let link =
                LinkParams::from_pairs(id, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            let approve = match pairs
                .iter()
                .find(|(k, _)| k == "decision")
                .map(|(_, v)| v.as_str())
            {
                Some("approve") => true,
                Some("deny") => false,
                _ => return Err(Error::invalid("decision", "choose Approve or Deny")),
            };
            let comment = pairs
                .iter()
                .find(|(k, _)| k == "comment")
                .map(|(_, v)| v.clone());
            let decided = service::decide(
                &deps.ledger,
                &deps.workflow,
                &*deps.catalog.current().await,
                &deps.key,
                &link,
                service::Verdict {
                    approve,
                    comment,
                    now,
                    origin: origin(request),
                },
            )
            .await?;
            tracing::info!(request_id = %id, approver = %link.approver_id, approve, status = %decided.status, "decision recorded");
            Ok(apigw::html(
                200,
                page::outcome(&decided, &link.approver_id, approve),
            ))
        }
        _ => Err(Error::forbidden("this link is not valid")),
    }
}

/// `POST /requests/{id}/decision`: the caller, established by SigV4, decides as the approver
/// whose ARN it is, under the same rules as a link.
async fn signed<L: Ledger, W: Workflow>(
    request: &ApiGatewayProxyRequest,
    deps: &Deps<L, W>,
) -> Result<ApiGatewayProxyResponse> {
    let caller = apigw::caller(request)?;
    let id = apigw::path_param(request, "id")?;
    if !is_request_id(id) {
        return Err(Error::not_found(format!("no request `{id}`")));
    }
    let body: DecisionBody = apigw::json_body(request)?;
    let approve = match body.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return Err(Error::invalid(
                "decision",
                "the decision must be `approve` or `deny`",
            ));
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let decided = service::decide_by_principal(
        &deps.ledger,
        &deps.workflow,
        &*deps.catalog.current().await,
        &caller,
        id,
        service::Verdict {
            approve,
            comment: body.comment,
            now,
            origin: origin(request),
        },
    )
    .await?;
    tracing::info!(request_id = %id, caller = %caller.arn, approve, status = %decided.status, "decision recorded");
    Ok(apigw::json(200, &decided.view()))
}

/// Where the decision came from, for its ledger event: API Gateway's view of the source IP
/// (`requestContext.identity.sourceIp`) and the `User-Agent` header, cleaned and bounded by
/// [`Origin::new`]. Evidence for whoever reads the ledger later, never a check.
fn origin(request: &ApiGatewayProxyRequest) -> Origin {
    let user_agent = request
        .headers
        .get("user-agent")
        .and_then(|value| value.to_str().ok())
        .or(request.request_context.identity.user_agent.as_deref());
    Origin::new(
        request.request_context.identity.source_ip.as_deref(),
        user_agent,
    )
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(&text.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(key), decode(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::encodings::Body;
    use trailgate_domain::catalog::Catalog;
    use trailgate_domain::request::Status;
    use trailgate_domain::service::ApprovalSettings;
    use trailgate_domain::testing::*;

    fn deps() -> Deps<MemoryLedger, MemoryWorkflow> {
        Deps {
            ledger: MemoryLedger::default(),
            workflow: MemoryWorkflow::default(),
            key: LinkKey::new(vec![9u8; 32]).unwrap(),
            catalog: trailgate_aws::catalog::CatalogSource::fixed(
                Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
            ),
        }
    }

    /// A pending request with its approval messages sent; returns bob's link query.
    async fn pending_with_link(deps: &Deps<MemoryLedger, MemoryWorkflow>) -> (String, String) {
        // Made now, not at the fixed test time: the handler checks the link's expiry (one
        // hour after the request) against the real clock.
        let id = seed(
            &deps.ledger,
            pending_request_at(time::OffsetDateTime::now_utc()),
        )
        .id;
        let notifier = MemoryNotifier::default();
        let settings = ApprovalSettings {
            key: &deps.key,
            decision_base_url: "http://x/v1",
        };
        service::request_approval(
            &deps.ledger,
            &notifier,
            &*deps.catalog.current().await,
            &settings,
            service::ApprovalTask {
                id: &id,
                task_token: "tok",
                now: time::OffsetDateTime::now_utc() - time::Duration::minutes(1),
            },
        )
        .await
        .unwrap();
        let message = notifier.sent.lock().unwrap()[0].2.clone();
        let url = message
            .lines()
            .find(|l| l.starts_with("http://x/v1/decisions/"))
            .unwrap()
            .to_owned();
        (id, url.split_once('?').unwrap().1.to_owned())
    }

    fn event(method: &str, id: &str) -> ApiGatewayProxyRequest {
        let text = include_str!("../../../events/decision/get_confirm.json");
        let mut event: ApiGatewayProxyRequest = serde_json::from_str(text).unwrap();
        event.http_method = method.parse().unwrap();
        event.path_parameters.insert("id".into(), id.into());
        if method == "POST" {
            // What a browser sends when the confirm page's form is submitted.
            for (name, value) in [
                ("content-type", "application/x-www-form-urlencoded"),
                ("host", "api.example"),
                ("origin", "https://api.example"),
                ("sec-fetch-site", "same-origin"),
            ] {
                event.headers.insert(name, value.parse().unwrap());
            }
        }
        event
    }

    fn text(response: &ApiGatewayProxyResponse) -> String {
        match &response.body {
            Some(Body::Text(text)) => text.clone(),
            _ => String::new(),
        }
    }

    #[tokio::test]
    async fn get_shows_the_request_and_changes_nothing_then_post_approves() {
        let deps = deps();
        let (id, query) = pending_with_link(&deps).await;
        let mut get = event("GET", &id);
        let query_map: std::collections::HashMap<String, String> =
            parse_form(&query).into_iter().collect();
        get.query_string_parameters = query_map.clone().into();
        let before = deps.ledger.record(&id).unwrap();
        let page = handle(get, &deps).await;
        assert_eq!(page.status_code, 200);
        assert!(text(&page).contains("fix prod") && text(&page).contains("<form method=\"post\""));
        assert_eq!(deps.ledger.record(&id).unwrap(), before);

        let mut post = event("POST", &id);
        post.body = Some(format!("{query}&decision=approve&comment=looks+fine"));
        let done = handle(post, &deps).await;
        assert_eq!(done.status_code, 200, "{}", text(&done));
        assert_eq!(deps.ledger.record(&id).unwrap().status, Status::Approved);
        assert_eq!(
            deps.ledger.record(&id).unwrap().decisions["bob"]
                .comment
                .as_deref(),
            Some("looks fine")
        );
    }

    #[tokio::test]
    async fn a_tampered_link_is_a_plain_403_and_a_replay_a_409() {
        let deps = deps();
        let (id, query) = pending_with_link(&deps).await;
        let mut post = event("POST", &id);
        post.body = Some(format!(
            "{}&decision=approve",
            query.replace("a=bob", "a=carol")
        ));
        let refused = handle(post, &deps).await;
        assert_eq!(refused.status_code, 403);
        assert!(text(&refused).contains("not valid"));
        assert_eq!(deps.ledger.record(&id).unwrap().status, Status::Pending);

        for expected in [200, 409] {
            let mut post = event("POST", &id);
            post.body = Some(format!("{query}&decision=deny"));
            assert_eq!(handle(post, &deps).await.status_code, expected);
        }
    }

    #[tokio::test]
    async fn a_post_from_another_site_or_not_a_form_changes_nothing() {
        let deps = deps();
        let (id, query) = pending_with_link(&deps).await;
        let before = deps.ledger.record(&id).unwrap();
        for (header, value) in [
            ("content-type", "text/plain"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
            ("origin", "https://evil.example"),
            ("origin", "null"),
        ] {
            let mut post = event("POST", &id);
            if header == "origin" {
                // A browser that does not send Sec-Fetch-Site.
                post.headers.remove("sec-fetch-site");
            }
            post.headers.insert(header, value.parse().unwrap());
            post.body = Some(format!("{query}&decision=approve"));
            let refused = handle(post, &deps).await;
            assert_eq!(refused.status_code, 403, "{header}: {value}");
            assert_eq!(
                deps.ledger.record(&id).unwrap(),
                before,
                "{header}: {value}"
            );
        }
        // Our own page sends `Origin: null` (no-referrer) and Sec-Fetch-Site: same-origin.
        let mut post = event("POST", &id);
        post.headers.insert("origin", "null".parse().unwrap());
        post.body = Some(format!("{query}&decision=deny"));
        assert_eq!(handle(post, &deps).await.status_code, 200);
        let deps = self::deps();
        let (id, query) = pending_with_link(&deps).await;
        // A client that is not a browser says nothing about sites, and is no CSRF victim.
        let mut post = event("POST", &id);
        post.headers.remove("origin");
        post.headers.remove("sec-fetch-site");
        post.body = Some(format!("{query}&decision=approve"));
        assert_eq!(handle(post, &deps).await.status_code, 200);
    }

    fn signed_event(id: &str, caller: &str, body: &str) -> ApiGatewayProxyRequest {
        let mut event = event("POST", id);
        event.resource = Some(SIGNED_ROUTE.into());
        event.request_context.identity.user_arn =
            Some(format!("arn:aws:iam::123456789012:user/{caller}"));
        event.body = Some(body.into());
        event
    }

    fn json_of(response: &ApiGatewayProxyResponse) -> serde_json::Value {
        serde_json::from_str(&text(response)).unwrap_or_default()
    }

    #[tokio::test]
    async fn the_signed_route_decides_as_the_callers_approver_and_answers_json() {
        let deps = deps();
        let (id, _) = pending_with_link(&deps).await;
        let approve = r#"{"decision": "approve", "comment": "ok"}"#;
        for (caller, body, status, code) in [
            ("alice", approve, 403, "Forbidden"),
            ("mallory", approve, 404, "NotFound"),
            ("bob", r#"{"decision": "maybe"}"#, 400, "InvalidRequest"),
            (
                "bob",
                r#"{"decision": "approve", "as": "carol"}"#,
                400,
                "InvalidRequest",
            ),
        ] {
            let refused = handle(signed_event(&id, caller, body), &deps).await;
            assert_eq!(refused.status_code, status, "{caller}: {}", text(&refused));
            assert_eq!(json_of(&refused)["error"]["code"], code);
        }
        assert_eq!(deps.ledger.record(&id).unwrap().status, Status::Pending);

        let done = handle(signed_event(&id, "bob", approve), &deps).await;
        assert_eq!(done.status_code, 200, "{}", text(&done));
        assert_eq!(json_of(&done)["status"], "APPROVED");
        assert!(!text(&done).contains("tok"), "the token leaked");
        let again = handle(signed_event(&id, "carol", r#"{"decision": "deny"}"#), &deps).await;
        assert_eq!(again.status_code, 409);
        assert_eq!(json_of(&again)["error"]["code"], "Conflict");
        // An unsigned call never reaches the domain.
        let mut unsigned = signed_event(&id, "bob", approve);
        unsigned.request_context.identity.user_arn = None;
        assert_eq!(handle(unsigned, &deps).await.status_code, 403);
        assert_eq!(deps.workflow.completed.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn both_routes_record_the_source_ip_and_user_agent_on_the_decision_event() {
        // The link route: API Gateway's sourceIp from the fixture, the browser's User-Agent.
        let deps = deps();
        let (id, query) = pending_with_link(&deps).await;
        let mut post = event("POST", &id);
        // A tab is the one control character a header may hold; it is stripped too.
        post.headers
            .insert("user-agent", "Mozilla/5.0\t(X11)".parse().unwrap());
        post.body = Some(format!("{query}&decision=approve"));
        assert_eq!(handle(post, &deps).await.status_code, 200);
        let events = deps.ledger.events(&id).await.unwrap();
        let decided = events.last().unwrap();
        assert_eq!(decided.action, "Approved");
        assert_eq!(decided.source_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(decided.user_agent.as_deref(), Some("Mozilla/5.0(X11)"));

        // The signed route: the CLI's user agent, bounded.
        let deps = super::tests::deps();
        let (id, _) = pending_with_link(&deps).await;
        let mut signed = signed_event(&id, "bob", r#"{"decision": "deny"}"#);
        signed.request_context.identity.source_ip = Some("2001:db8::1".into());
        signed
            .headers
            .insert("user-agent", "jitctl/0.1 ".repeat(100).parse().unwrap());
        assert_eq!(handle(signed, &deps).await.status_code, 200);
        let events = deps.ledger.events(&id).await.unwrap();
        let decided = events.last().unwrap();
        assert_eq!(decided.action, "Denied");
        assert_eq!(decided.source_ip.as_deref(), Some("2001:db8::1"));
        let agent = decided.user_agent.as_deref().unwrap();
        assert!(
            agent.starts_with("jitctl/0.1") && agent.chars().count() <= 256,
            "{agent}"
        );
    }

    #[test]
    fn forms_decode_plus_and_percent() {
        assert_eq!(
            parse_form("a=b%40c&comment=x+y%26z"),
            [
                ("a".into(), "b@c".into()),
                ("comment".into(), "x y&z".into())
            ]
        );
    }
}
