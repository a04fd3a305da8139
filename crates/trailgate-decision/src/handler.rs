//! Translates the public decision routes. GET only shows the confirm page (e-mail link
//! scanners prefetch GETs); POST decides. Both verify the signed link first; every refusal is
//! a plain page with a 4xx status that changes nothing.

use crate::page;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use trailgate_aws::apigw;
use trailgate_domain::catalog::Catalog;
use trailgate_domain::error::{Error, ErrorKind, Result};
use trailgate_domain::link::{LinkKey, LinkParams};
use trailgate_domain::ports::{Ledger, Workflow};
use trailgate_domain::request::is_request_id;
use trailgate_domain::service;

pub struct Deps<L, W> {
    pub ledger: L,
    pub workflow: W,
    pub key: LinkKey,
    pub catalog: Catalog,
}

pub async fn handle<L: Ledger, W: Workflow>(
    request: ApiGatewayProxyRequest,
    deps: &Deps<L, W>,
) -> ApiGatewayProxyResponse {
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
            let pairs: Vec<(String, String)> = ["a", "e", "s"]
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
            let review =
                service::review(&deps.ledger, &deps.catalog, &deps.key, &link, now).await?;
            Ok(apigw::html(200, page::confirm(&review, &link)))
        }
        "POST" => {
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
                &deps.catalog,
                &deps.key,
                &link,
                approve,
                comment,
                now,
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
    use trailgate_domain::request::Status;
    use trailgate_domain::service::ApprovalSettings;
    use trailgate_domain::testing::*;

    fn deps() -> Deps<MemoryLedger, MemoryWorkflow> {
        Deps {
            ledger: MemoryLedger::default(),
            workflow: MemoryWorkflow::default(),
            key: LinkKey::new(vec![9u8; 32]).unwrap(),
            catalog: Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
        }
    }

    /// A pending request with its approval messages sent; returns bob's link query.
    async fn pending_with_link(deps: &Deps<MemoryLedger, MemoryWorkflow>) -> (String, String) {
        let id = seed(&deps.ledger, pending_request()).id;
        let notifier = MemoryNotifier::default();
        let settings = ApprovalSettings {
            key: &deps.key,
            decision_base_url: "http://x/v1",
        };
        service::request_approval(
            &deps.ledger,
            &notifier,
            &deps.catalog,
            &settings,
            &id,
            "tok",
            time::OffsetDateTime::now_utc() - time::Duration::minutes(1),
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
