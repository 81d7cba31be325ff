//! DynamoDB's item size, computed from the wire form of an item (`{"name": {"S": "..."}}`) by
//! the rules in the Developer Guide ("Item sizes and formats"): names and strings count their
//! UTF-8 bytes, binaries their decoded bytes, a number about one byte per two significant digits
//! plus one, `BOOL` and `NULL` one byte, and a list or map 3 bytes plus one per element.

use base64::Engine;
use serde_json::{Map, Value};

/// The size DynamoDB counts for one item (a map of attribute names to attribute values).
pub fn item_bytes(item: &Map<String, Value>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_bytes(value))
        .sum()
}

/// The size of one attribute value, without its name.
pub fn value_bytes(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len(),
        ("N", Value::String(n)) => number_bytes(n),
        ("B", Value::String(b)) => binary_bytes(b),
        ("BOOL", _) | ("NULL", _) => 1,
        ("SS", Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::len).sum(),
        ("NS", Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(number_bytes)
            .sum(),
        ("BS", Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(binary_bytes)
            .sum(),
        ("L", Value::Array(items)) => {
            3 + items
                .iter()
                .map(|item| value_bytes(item) + 1)
                .sum::<usize>()
        }
        ("M", Value::Object(entries)) => {
            3 + entries
                .iter()
                .map(|(name, item)| name.len() + value_bytes(item) + 1)
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// One byte per two significant digits (leading and trailing zeros trimmed), plus one.
fn number_bytes(text: &str) -> usize {
    let mantissa = text
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

fn binary_bytes(encoded: &str) -> usize {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map(|b| b.len())
        .unwrap_or(encoded.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn size(item: Value) -> usize {
        item_bytes(item.as_object().expect("item is an object"))
    }

    #[test]
    fn strings_and_names_count_their_utf8_bytes() {
        assert_eq!(size(json!({"id": {"S": "abc"}})), 5);
        assert_eq!(size(json!({"id": {"S": "é"}})), 4);
    }

    #[test]
    fn numbers_count_one_byte_per_two_significant_digits_plus_one() {
        assert_eq!(size(json!({"n": {"N": "12345"}})), 1 + 3 + 1);
        assert_eq!(size(json!({"n": {"N": "-0.00100"}})), 1 + 1 + 1);
        assert_eq!(size(json!({"n": {"N": "1.5E+3"}})), 1 + 1 + 1);
    }

    #[test]
    fn lists_and_maps_carry_three_bytes_and_one_per_element() {
        assert_eq!(size(json!({"l": {"L": []}})), 1 + 3);
        assert_eq!(
            size(json!({"m": {"M": {"k": {"S": "vv"}, "b": {"BOOL": true}}}})),
            1 + 3 + (1 + 2 + 1) + (1 + 1 + 1)
        );
    }

    #[test]
    fn binaries_count_their_decoded_bytes() {
        assert_eq!(size(json!({"b": {"B": "AAECAw=="}})), 1 + 4);
        assert_eq!(size(json!({"s": {"BS": ["AAE=", "AA=="]}})), 1 + 3);
    }
}
