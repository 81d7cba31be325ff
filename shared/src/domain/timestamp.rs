//! Timestamps as fixed-width RFC 3339 in UTC with microseconds
//! (`2026-11-22T10:15:30.123456Z`), so that their text sorts in time order (the DynamoDB
//! customer index sorts `createdAt` as a string). Any RFC 3339 text is accepted on input.

use serde::{Deserialize, Deserializer, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Formats a timestamp the way every document of this system does.
pub fn format(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    at.to_offset(UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

pub fn serialize<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*at))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
    let text = String::deserialize(deserializer)?;
    OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn text_has_a_fixed_width_and_sorts_in_time_order() {
        let a = datetime!(2026-11-22 10:15:30.1 UTC);
        let b = datetime!(2026-11-22 10:15:30.123456 UTC);
        assert_eq!(format(a), "2026-11-22T10:15:30.100000Z");
        assert!(format(a) < format(b));
        let shifted = datetime!(2026-11-22 12:15:30 +02:00);
        assert_eq!(format(shifted), "2026-11-22T10:15:30.000000Z");
    }
}
