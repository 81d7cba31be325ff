//! Reading a command's headers: its content type, `Idempotency-Key` and `If-Match`, and what an
//! idempotency key is scoped to.

use lambda_http::http::header;
use lambda_http::Request;
use orders::domain::access::Caller;
use orders::problem::Problem;

const MAX_IDEMPOTENCY_KEY: usize = 255;

/// JSON (or a `+json` type), or no `Content-Type` at all; anything else is 415.
pub(crate) fn check_content_type(request: &Request) -> Result<(), Problem> {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let media_type = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type == "application/json" || media_type.ends_with("+json") {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(text))
    }
}

/// What an idempotency key is scoped to: the operation and the caller, so that one caller's
/// keys never meet another's (nor reveal that they exist).
pub(crate) fn key_scope(operation: &str, caller: &Caller) -> String {
    let kind = if caller.is_staff() {
        "staff"
    } else {
        "customer"
    };
    format!("{operation} {kind}:{}", caller.subject())
}

/// The `Idempotency-Key` header, when present: 1 to 255 visible ASCII characters.
pub(crate) fn idempotency_key(request: &Request) -> Result<Option<String>, Problem> {
    let Some(value) = request.headers().get(crate::IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("").trim();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Problem::bad_request(
            "invalid-idempotency-key",
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        ));
    }
    Ok(Some(key.to_string()))
}

/// The version named by `If-Match` (`"3"`, `W/"3"`), or none for an absent header or `*`.
/// Exactly the shape openapi.yaml gives (`^(\*|(W/)?"0*[1-9][0-9]{0,17}")$`); anything else,
/// an empty value included, is 400.
pub(crate) fn if_match(request: &Request) -> Result<Option<i64>, Problem> {
    let Some(value) = request.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    parse_etag(text).map(Some).ok_or_else(|| {
        Problem::bad_request(
            "invalid-if-match",
            "If-Match must be `*` or the ETag of the order, such as \"3\" or W/\"3\"",
        )
    })
}

/// The version in a quoted (optionally weak) ETag: 1 to 18 significant digits, not zero.
fn parse_etag(text: &str) -> Option<i64> {
    let quoted = text.strip_prefix("W/").unwrap_or(text);
    let digits = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let significant = digits.trim_start_matches('0');
    if significant.is_empty()
        || significant.len() > 18
        || !significant.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    significant.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_etag;

    #[test]
    fn only_quoted_positive_versions_are_etags() {
        assert_eq!(parse_etag("\"3\""), Some(3));
        assert_eq!(parse_etag("W/\"3\""), Some(3));
        assert_eq!(parse_etag("\"007\""), Some(7));
        assert_eq!(
            parse_etag("\"999999999999999999\""),
            Some(999_999_999_999_999_999)
        );
        for bad in [
            "",
            "3",
            "\"\"",
            "\"0\"",
            "\"-1\"",
            "\"+1\"",
            "\"3",
            "3\"",
            "W/3",
            "W/W/\"3\"",
            "\"\"3\"\"",
            "\"1000000000000000000\"",
            "\" 3\"",
        ] {
            assert_eq!(parse_etag(bad), None, "{bad:?}");
        }
    }
}
