//! Listing cursors: opaque to clients, signed so that a tampered or foreign cursor is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use orders::dynamodb::PageKey;
use sha2::Sha256;

type Signer = Hmac<Sha256>;

/// Why a cursor was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CursorError {
    #[error("the cursor is malformed")]
    Malformed,
    #[error("the cursor was altered")]
    BadSignature,
    #[error("the cursor belongs to another listing")]
    Foreign,
}

fn signer(key: &[u8]) -> Signer {
    // HMAC accepts keys of any length.
    Signer::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// `base64url(json(page key)) "." base64url(hmac)`.
pub fn encode(key: &[u8], page: &PageKey) -> String {
    let payload = serde_json::to_vec(page).unwrap_or_default();
    let mut mac = signer(key);
    mac.update(&payload);
    let tag = mac.finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// The page key in a cursor this service issued for `customer_id`'s listing.
pub fn decode(key: &[u8], cursor: &str, customer_id: &str) -> Result<PageKey, CursorError> {
    let (payload, tag) = cursor.split_once('.').ok_or(CursorError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| CursorError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| CursorError::Malformed)?;
    let mut mac = signer(key);
    mac.update(&payload);
    mac.verify_slice(&tag)
        .map_err(|_| CursorError::BadSignature)?;
    let page: PageKey = serde_json::from_slice(&payload).map_err(|_| CursorError::Malformed)?;
    if page.customer_id != customer_id {
        return Err(CursorError::Foreign);
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> PageKey {
        PageKey {
            order_id: "0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d".into(),
            customer_id: "cust-1".into(),
            created_at: "2026-11-22T10:15:30.123456Z".into(),
        }
    }

    #[test]
    fn round_trips_and_refuses_tampering() {
        let cursor = encode(b"k", &page());
        assert_eq!(decode(b"k", &cursor, "cust-1").unwrap(), page());
        assert_eq!(
            decode(b"other key", &cursor, "cust-1"),
            Err(CursorError::BadSignature)
        );
        assert_eq!(decode(b"k", &cursor, "cust-2"), Err(CursorError::Foreign));
        // Flip one character of the payload.
        let mut chars: Vec<char> = cursor.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert!(decode(b"k", &tampered, "cust-1").is_err());
        for junk in ["", ".", "abc", "a.b.c", "!!!.???", "e30.AAAA"] {
            assert!(decode(b"k", junk, "cust-1").is_err(), "{junk}");
        }
    }
}
