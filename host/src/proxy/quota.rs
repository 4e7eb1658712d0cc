//! Whether an upstream's answer means the credential's quota is gone, so the
//! request should go to a fallback, or only that it is rate limited for a
//! moment, which the client (every SDK retries 429s) waits out itself.
//!
//! What the APIs say (their own error bodies and headers):
//! - OpenAI: 429 `insufficient_quota` (billing); a rate limit is 429
//!   `rate_limit_exceeded` with `retry-after` and `x-ratelimit-reset-*`
//!   (durations like `1s`, `6m0s`).
//! - Codex's ChatGPT sign-in: 429 `usage_limit_reached` with
//!   `resets_in_seconds` / `resets_at`.
//! - Azure OpenAI: 429 with `retry-after` / `retry-after-ms`; an exhausted
//!   deployment has a long one.
//! - Anthropic: 429 `rate_limit_error` with `retry-after` and
//!   `anthropic-ratelimit-*-reset` (RFC 3339); credit gone is a 400
//!   `invalid_request_error` whose message says the credit balance is too low.

use std::time::{Duration, SystemTime};

use hyper::{HeaderMap, StatusCode};
use keyhelper_core::manifest::ApiFamily;
use serde_json::Value;

/// How long a quota without a stated reset is taken to be gone.
pub const UNSTATED_RESET: Duration = Duration::from_secs(15 * 60);

/// The largest error body read to judge a response.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// Whether a response may say the quota is gone (then its body is read and
/// [`judge`]d); every other response streams through untouched.
pub fn worth_reading(family: ApiFamily, status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (family == ApiFamily::Anthropic && status == StatusCode::BAD_REQUEST)
}

/// The quota of the credential that got this answer is gone for `reset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    /// Until the upstream says it is back, or [`UNSTATED_RESET`].
    pub reset: Duration,
    /// Why, on one line, without anything from the request.
    pub reason: String,
}

/// Judges a response that was [`worth_reading`]: `Some` when the quota is
/// gone (or resets later than `failover_after`), `None` when the client
/// should see it (a short rate limit, another error).
pub fn judge(
    family: ApiFamily,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    failover_after: Duration,
    now: SystemTime,
) -> Option<Exhausted> {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = &json["error"];
    let code = error["code"].as_str().or_else(|| error["type"].as_str()).unwrap_or_default();
    let reset = announced_reset(headers, error, now);
    if status == StatusCode::BAD_REQUEST {
        let message = error["message"].as_str().unwrap_or_default().to_ascii_lowercase();
        return (family == ApiFamily::Anthropic && message.contains("credit balance")).then(|| Exhausted {
            reset: reset.unwrap_or(UNSTATED_RESET),
            reason: "the credit balance is too low".to_string(),
        });
    }
    if status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    match code {
        "insufficient_quota" | "usage_limit_reached" => Some(Exhausted {
            reset: reset.unwrap_or(UNSTATED_RESET),
            reason: format!("the upstream says `{code}`"),
        }),
        _ => match reset {
            Some(reset) if reset > failover_after => Some(Exhausted {
                reason: format!("rate limited for {}s, over failover_after", reset.as_secs()),
                reset,
            }),
            _ => None,
        },
    }
}

/// The longest reset any header or the error body announces.
fn announced_reset(headers: &HeaderMap, error: &Value, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut resets: Vec<Duration> = Vec::new();
    if let Some(seconds) = text("retry-after").and_then(|v| v.trim().parse::<f64>().ok()) {
        resets.push(Duration::from_secs_f64(seconds.max(0.0)));
    }
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<u64>().ok()) {
        resets.push(Duration::from_millis(ms));
    }
    for (name, value) in headers {
        let (name, Ok(value)) = (name.as_str(), value.to_str()) else { continue };
        if name.starts_with("x-ratelimit-reset-") {
            resets.extend(go_duration(value));
        } else if name.starts_with("anthropic-ratelimit-") && name.ends_with("-reset") {
            resets.extend(until_rfc3339(value, now));
        }
    }
    if let Some(seconds) = error["resets_in_seconds"].as_u64() {
        resets.push(Duration::from_secs(seconds));
    }
    if let Some(at) = error["resets_at"].as_u64() {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(at);
        resets.push(at.duration_since(now).unwrap_or_default());
    }
    resets.into_iter().max()
}

/// OpenAI's reset durations: `1s`, `6m0s`, `1h2m3s`, `20ms`, `1.5s`.
fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let (unit, scale) = [("ms", 0.001), ("h", 3600.0), ("m", 60.0), ("s", 1.0)]
            .into_iter()
            .find(|(unit, _)| rest.starts_with(unit))?;
        total += number * scale;
        rest = &rest[unit.len()..];
    }
    Some(Duration::from_secs_f64(total))
}

/// The time from `now` until an RFC 3339 UTC instant (`2026-12-01T12:00:00Z`).
fn until_rfc3339(text: &str, now: SystemTime) -> Option<Duration> {
    let at = keyhelper_core::rfc3339::parse(text)?;
    let at = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(at).ok()?);
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    fn judge_429(family: ApiFamily, pairs: &[(&str, &str)], body: &str) -> Option<Exhausted> {
        judge(
            family,
            StatusCode::TOO_MANY_REQUESTS,
            &headers(pairs),
            body.as_bytes(),
            Duration::from_secs(5),
            now(),
        )
    }

    #[test]
    fn openai_quota_gone_fails_over_and_a_short_rate_limit_does_not() {
        let quota = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let gone = judge_429(ApiFamily::OpenAi, &[], quota).unwrap();
        assert_eq!(gone.reset, UNSTATED_RESET);
        let limited =
            r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(judge_429(ApiFamily::OpenAi, &[("retry-after", "1")], limited), None);
        assert_eq!(judge_429(ApiFamily::OpenAi, &[("x-ratelimit-reset-requests", "1s")], limited), None);
        let long = judge_429(ApiFamily::OpenAi, &[("x-ratelimit-reset-tokens", "6m0s")], limited).unwrap();
        assert_eq!(long.reset, Duration::from_secs(360));
    }

    #[test]
    fn codex_usage_limit_and_azure_long_retry_after() {
        let codex = r#"{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","resets_in_seconds":3600}}"#;
        assert_eq!(judge_429(ApiFamily::OpenAi, &[], codex).unwrap().reset, Duration::from_secs(3600));
        let azure = r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded token rate limit. Please retry after 86400 seconds."}}"#;
        assert_eq!(
            judge_429(ApiFamily::OpenAi, &[("retry-after", "86400")], azure).unwrap().reset.as_secs(),
            86400
        );
        assert_eq!(judge_429(ApiFamily::OpenAi, &[("retry-after-ms", "800")], azure), None);
    }

    #[test]
    fn anthropic_resets_and_credit() {
        let limited = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
        let soon = keyhelper_core::rfc3339::format((NOW + 2) as i64);
        assert_eq!(
            judge_429(ApiFamily::Anthropic, &[("anthropic-ratelimit-tokens-reset", &soon)], limited),
            None
        );
        let later = keyhelper_core::rfc3339::format((NOW + 600) as i64);
        let gone = judge_429(ApiFamily::Anthropic, &[("anthropic-ratelimit-tokens-reset", &later)], limited)
            .unwrap();
        assert_eq!(gone.reset, Duration::from_secs(600));
        let credit = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#;
        let bad = |family| {
            judge(
                family,
                StatusCode::BAD_REQUEST,
                &HeaderMap::new(),
                credit.as_bytes(),
                Duration::from_secs(5),
                now(),
            )
        };
        assert!(bad(ApiFamily::Anthropic).is_some());
        assert!(bad(ApiFamily::OpenAi).is_none(), "a 400 is only a quota signal from Anthropic");
        assert!(!worth_reading(ApiFamily::OpenAi, StatusCode::BAD_REQUEST));
        assert!(worth_reading(ApiFamily::Anthropic, StatusCode::BAD_REQUEST));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration(""), None);
    }
}
