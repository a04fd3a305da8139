//! The outbox: the SNS messages moto has "sent" (moto sends no e-mail), read from its
//! `/moto-api/data.json` dump, shown as an HTML page with clickable links and as JSON for tests.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;
use trailgate_domain::html::escape;

/// One published SNS message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxMessage {
    pub topic_arn: String,
    pub message_id: String,
    pub subject: Option<String>,
    pub message: String,
    /// Message attribute name → value.
    pub attributes: BTreeMap<String, String>,
}

/// The messages in moto's dump, in the order moto keeps them (per topic, oldest first):
/// `data["sns"]["Topic"][i]["sent_notifications"]` = `[message_id, message, subject,
/// message_attributes, group_id]`.
pub fn messages_from_moto(data: &Value) -> Vec<OutboxMessage> {
    let mut out = Vec::new();
    let topics = data
        .pointer("/sns/Topic")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for topic in topics {
        let topic_arn = topic
            .get("arn")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let sent = topic
            .get("sent_notifications")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for notification in sent {
            let Some(fields) = notification.as_array() else {
                continue;
            };
            let text = |i: usize| fields.get(i).and_then(Value::as_str).map(str::to_owned);
            let mut attributes = BTreeMap::new();
            if let Some(Value::Object(map)) = fields.get(3) {
                for (name, attribute) in map {
                    let value = attribute
                        .get("Value")
                        .or_else(|| attribute.get("StringValue"))
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .unwrap_or_default();
                    attributes.insert(name.clone(), value);
                }
            }
            out.push(OutboxMessage {
                topic_arn: topic_arn.clone(),
                message_id: text(0).unwrap_or_default(),
                subject: text(2),
                message: text(1).unwrap_or_default(),
                attributes,
            });
        }
    }
    out
}

/// Orders messages newest first. moto keeps no timestamps, so the router numbers messages in the
/// order it first sees them (`seen`, kept between calls) and sorts by that number, descending.
pub fn newest_first(
    messages: Vec<OutboxMessage>,
    seen: &mut HashMap<String, u64>,
) -> Vec<OutboxMessage> {
    let mut numbered: Vec<(u64, usize, OutboxMessage)> = messages
        .into_iter()
        .enumerate()
        .map(|(index, message)| {
            let next = seen.len() as u64;
            let number = *seen.entry(message.message_id.clone()).or_insert(next);
            (number, index, message)
        })
        .collect();
    numbered.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    numbered
        .into_iter()
        .map(|(_, _, message)| message)
        .collect()
}

/// The HTML page: every value escaped, links in message bodies made clickable.
pub fn render_html(messages: &[OutboxMessage]) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>trailgate outbox</title>\
         <style>body{font-family:sans-serif;max-width:60em;margin:2em auto}\
         article{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}\
         pre{white-space:pre-wrap;word-break:break-word}.meta{color:#555;font-size:90%}</style>\
         </head><body>\n<h1>Outbox</h1>\n<p class=\"meta\">SNS messages published in the local \
         stack, newest first. <a href=\"/_outbox\">Refresh</a> · <a href=\"/_outbox.json\">JSON</a></p>\n",
    );
    if messages.is_empty() {
        html.push_str("<p>No messages yet.</p>\n");
    }
    for message in messages {
        html.push_str("<article>\n");
        html.push_str(&format!(
            "<h2>{}</h2>\n",
            escape(message.subject.as_deref().unwrap_or("(no subject)"))
        ));
        html.push_str(&format!(
            "<p class=\"meta\">topic {} · message {}</p>\n",
            escape(&message.topic_arn),
            escape(&message.message_id)
        ));
        if !message.attributes.is_empty() {
            html.push_str("<ul class=\"meta\">");
            for (name, value) in &message.attributes {
                html.push_str(&format!("<li>{}: {}</li>", escape(name), escape(value)));
            }
            html.push_str("</ul>\n");
        }
        html.push_str(&format!(
            "<pre>{}</pre>\n</article>\n",
            linkify(&message.message)
        ));
    }
    html.push_str("</body></html>\n");
    html
}

/// Escapes text and turns `http(s)://…` runs into links; trailing punctuation stays text.
pub fn linkify(text: &str) -> String {
    let pattern = regex::Regex::new(r#"https?://[^\s<>"']+"#).expect("valid regex");
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for found in pattern.find_iter(text) {
        let url = found
            .as_str()
            .trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
        let end = found.start() + url.len();
        out.push_str(&escape(&text[last..found.start()]));
        out.push_str(&format!("<a href=\"{0}\">{0}</a>", escape(url)));
        last = end;
    }
    out.push_str(&escape(&text[last..]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({"sns": {"Topic": [
            {"arn": "arn:aws:sns:us-east-1:123456789012:approvals", "sent_notifications": [
                ["m1", "Approve: http://127.0.0.1:4567/v1/decisions/r-1?a=bob&e=1&s=x.", "Access request <r-1>", {"approver": {"Type": "String", "Value": "bob@example.com"}}, null],
                ["m2", "second", null, {}, null],
            ]},
            {"arn": "arn:aws:sns:us-east-1:123456789012:alerts", "sent_notifications": []},
        ]}})
    }

    #[test]
    fn reads_moto_notifications() {
        let messages = messages_from_moto(&data());
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].subject.as_deref(), Some("Access request <r-1>"));
        assert_eq!(messages[0].attributes["approver"], "bob@example.com");
        assert_eq!(messages[1].subject, None);
        assert!(messages_from_moto(&json!({})).is_empty());
    }

    #[test]
    fn orders_newest_first_across_polls() {
        let mut seen = HashMap::new();
        let first = newest_first(messages_from_moto(&data()), &mut seen);
        assert_eq!(
            first
                .iter()
                .map(|m| m.message_id.as_str())
                .collect::<Vec<_>>(),
            ["m2", "m1"]
        );
        let mut more = data();
        more["sns"]["Topic"][1]["sent_notifications"] = json!([["m3", "alert", "s", {}, null]]);
        let second = newest_first(messages_from_moto(&more), &mut seen);
        assert_eq!(
            second
                .iter()
                .map(|m| m.message_id.as_str())
                .collect::<Vec<_>>(),
            ["m3", "m2", "m1"]
        );
    }

    #[test]
    fn escapes_everything_and_links_urls() {
        let html = render_html(&messages_from_moto(&data()));
        assert!(html.contains("Access request &lt;r-1&gt;"));
        assert!(html.contains(
            "<a href=\"http://127.0.0.1:4567/v1/decisions/r-1?a=bob&amp;e=1&amp;s=x\">http://127.0.0.1:4567/v1/decisions/r-1?a=bob&amp;e=1&amp;s=x</a>."
        ));
        assert!(!html.contains("<r-1>"));
        assert_eq!(
            linkify("<script>x</script>"),
            "&lt;script&gt;x&lt;/script&gt;"
        );
        assert_eq!(
            linkify("go \"http://a/b\" now"),
            "go &quot;<a href=\"http://a/b\">http://a/b</a>&quot; now"
        );
    }
}
