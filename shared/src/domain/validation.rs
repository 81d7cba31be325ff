//! Turning an untrusted `POST /orders` body into a valid [`Order`], or into a list of field
//! errors that say exactly what is wrong.

use super::order::{now_micros, Customer, Order, OrderId, OrderLine, OrderStatus, ShippingAddress};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: i64 = 10_000;
/// The largest unit price, in minor units (one billion major units at two decimals).
pub const MAX_UNIT_PRICE: i64 = 100_000_000_000;
const MAX_ID_CHARS: usize = 64;
/// The longest customer id, in characters (not bytes), for placing and for listing orders.
pub const MAX_CUSTOMER_ID_CHARS: usize = MAX_ID_CHARS;
const MAX_NAME_CHARS: usize = 200;
const MAX_EMAIL_CHARS: usize = 254;
/// The longest reason a status change may carry.
pub(crate) const MAX_REASON_CHARS: usize = 500;
const MAX_ADDRESS_LINE_CHARS: usize = 200;
const MAX_POSTAL_CODE_CHARS: usize = 20;

/// The body of `POST /orders`, as the client sent it. Unknown fields are rejected so that a
/// misspelt field is reported instead of silently ignored.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub customer: CustomerInput,
    pub currency: String,
    pub lines: Vec<LineInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<ShippingAddress>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerInput {
    pub id: String,
    pub name: String,
    pub email: String,
}

/// One requested line. Numbers are read as wide integers so that a negative or huge value is
/// reported as out of range rather than as a type error; an integral number written with a
/// fraction or exponent (`2.0`, `1e3`) is that integer, as in JSON Schema.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LineInput {
    pub sku: String,
    pub name: String,
    #[serde(deserialize_with = "integral")]
    pub quantity: i64,
    /// Price of one unit in the currency's minor unit (cents for USD, yen for JPY).
    #[serde(deserialize_with = "integral")]
    pub unit_price: i64,
}

/// Reads a JSON number with no fractional part as an `i64`, saturating beyond its range so
/// that the range check reports it. `1.5` is "expected an integer".
fn integral<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match serde_json::Number::deserialize(deserializer)? {
        n if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
        n if n.is_u64() => Ok(i64::MAX),
        n => match n.as_f64() {
            // `as` saturates at the bounds of i64.
            Some(f) if f.fract() == 0.0 => Ok(f as i64),
            _ => Err(serde::de::Error::custom(format!(
                "expected an integer, got {n}"
            ))),
        },
    }
}

/// One thing wrong with a request, located by a JSON path such as `lines[2].quantity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a body could not be read as a [`CreateOrderRequest`] at all.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the request body is empty")]
    Empty,
    #[error("the request body is {0} bytes; the limit is {MAX_BODY_BYTES}")]
    TooLarge(usize),
    #[error("the request body is not valid JSON: {0}")]
    Syntax(String),
    #[error("{}", .0.message)]
    Field(FieldError),
}

/// Reads a `POST /orders` body.
pub fn decode_request(body: &[u8]) -> Result<CreateOrderRequest, DecodeError> {
    decode_body(body)
}

/// Reads a JSON object body, naming the field at fault when its shape is wrong.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(DecodeError::TooLarge(body.len()));
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(DecodeError::Empty),
        // A struct also deserializes from a JSON array; only an object is an order.
        Some(b'[') => {
            return Err(DecodeError::Field(FieldError::new(
                "",
                "the body must be a JSON object, not an array",
            )))
        }
        Some(_) => {}
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let request = match result {
        Ok(request) => request,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => {
                    let field = if path == "." { String::new() } else { path };
                    DecodeError::Field(FieldError::new(field, strip_position(&inner)))
                }
                _ => DecodeError::Syntax(inner.to_string()),
            });
        }
    };
    de.end().map_err(|e| DecodeError::Syntax(e.to_string()))?;
    Ok(request)
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Adds an error when `value` is blank, longer than `max` characters or has control characters.
pub(crate) fn check_text(
    errors: &mut Vec<FieldError>,
    field: impl FnOnce() -> String,
    value: &str,
    max: usize,
) {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        errors.push(FieldError::new(field(), "must not be blank"));
    } else if chars > max {
        errors.push(FieldError::new(
            field(),
            format!("must be at most {max} characters (got {chars})"),
        ));
    } else if value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field(),
            "must not contain control characters",
        ));
    }
}

/// Whether `id` names a customer whose orders can be listed: the rule an order's `customer.id`
/// passes (1 to [`MAX_CUSTOMER_ID_CHARS`] characters, not blank, no control characters), so
/// that every customer who can order can also list.
pub fn is_valid_customer_id(id: &str) -> bool {
    let mut errors = Vec::new();
    check_text(&mut errors, String::new, id, MAX_CUSTOMER_ID_CHARS);
    errors.is_empty()
}

fn check_email(errors: &mut Vec<FieldError>, value: &str) {
    let before = errors.len();
    check_text(errors, || "customer.email".into(), value, MAX_EMAIL_CHARS);
    if errors.len() > before {
        return;
    }
    let valid = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !value.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if !valid {
        errors.push(FieldError::new(
            "customer.email",
            "must be an email address such as ada@example.com",
        ));
    }
}

fn check_currency(errors: &mut Vec<FieldError>, code: &str) {
    let known = iso_currency::Currency::from_code(code);
    match known {
        Some(currency) if currency.exponent().is_some() => {}
        Some(_) => errors.push(FieldError::new(
            "currency",
            format!("{code} has no minor unit and cannot be used for prices"),
        )),
        None => errors.push(FieldError::new(
            "currency",
            format!("{code:?} is not an ISO 4217 currency code (for example EUR or USD)"),
        )),
    }
}

/// Checks a delivery address whose fields sit under `prefix` (for example `shippingAddress.`)
/// and returns it trimmed.
pub fn check_address(
    errors: &mut Vec<FieldError>,
    prefix: &str,
    address: &ShippingAddress,
) -> ShippingAddress {
    let texts = [
        ("recipient", &address.recipient, MAX_NAME_CHARS),
        ("line1", &address.line1, MAX_ADDRESS_LINE_CHARS),
        ("city", &address.city, MAX_NAME_CHARS),
        ("postalCode", &address.postal_code, MAX_POSTAL_CODE_CHARS),
    ];
    for (name, value, max) in texts {
        check_text(errors, || format!("{prefix}{name}"), value, max);
    }
    if let Some(line2) = &address.line2 {
        check_text(
            errors,
            || format!("{prefix}line2"),
            line2,
            MAX_ADDRESS_LINE_CHARS,
        );
    }
    if address.country.len() != 2 || !address.country.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.push(FieldError::new(
            format!("{prefix}country"),
            "must be an ISO 3166-1 alpha-2 code such as DE",
        ));
    }
    let trim = |text: &String| text.trim().to_string();
    ShippingAddress {
        recipient: trim(&address.recipient),
        line1: trim(&address.line1),
        line2: address.line2.as_ref().map(trim),
        city: trim(&address.city),
        postal_code: trim(&address.postal_code),
        country: address.country.clone(),
    }
}

impl CreateOrderRequest {
    /// Checks every rule and, when all hold, builds the new order (version 1, `PENDING`) with
    /// the line totals and order total computed here, never taken from the client.
    pub fn validate(self) -> Result<Order, Vec<FieldError>> {
        let mut errors = Vec::new();
        check_text(
            &mut errors,
            || "customer.id".into(),
            &self.customer.id,
            MAX_CUSTOMER_ID_CHARS,
        );
        check_text(
            &mut errors,
            || "customer.name".into(),
            &self.customer.name,
            MAX_NAME_CHARS,
        );
        check_email(&mut errors, &self.customer.email);
        check_currency(&mut errors, &self.currency);
        let shipping_address = self
            .shipping_address
            .as_ref()
            .map(|address| check_address(&mut errors, "shippingAddress.", address));

        if self.lines.is_empty() {
            errors.push(FieldError::new("lines", "must contain at least one line"));
        } else if self.lines.len() > MAX_LINES {
            errors.push(FieldError::new(
                "lines",
                format!(
                    "must contain at most {MAX_LINES} lines (got {})",
                    self.lines.len()
                ),
            ));
        }

        let mut lines = Vec::with_capacity(self.lines.len().min(MAX_LINES));
        let mut total: i64 = 0;
        for (i, line) in self.lines.iter().enumerate().take(MAX_LINES) {
            let before = errors.len();
            check_text(
                &mut errors,
                || format!("lines[{i}].sku"),
                &line.sku,
                MAX_ID_CHARS,
            );
            check_text(
                &mut errors,
                || format!("lines[{i}].name"),
                &line.name,
                MAX_NAME_CHARS,
            );
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                errors.push(FieldError::new(
                    format!("lines[{i}].quantity"),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                ));
            }
            if !(0..=MAX_UNIT_PRICE).contains(&line.unit_price) {
                errors.push(FieldError::new(
                    format!("lines[{i}].unitPrice"),
                    format!("must be between 0 and {MAX_UNIT_PRICE} (minor units)"),
                ));
            }
            if errors.len() > before {
                continue;
            }
            // Bounded above: at most 1e4 * 1e11 per line and 100 lines, far below i64::MAX;
            // checked all the same.
            let line_total = line.quantity.checked_mul(line.unit_price);
            match line_total.and_then(|t| total.checked_add(t).map(|sum| (t, sum))) {
                Some((line_total, sum)) => {
                    total = sum;
                    lines.push(OrderLine {
                        sku: line.sku.trim().to_string(),
                        name: line.name.trim().to_string(),
                        quantity: line.quantity as i32,
                        unit_price: line.unit_price,
                        line_total,
                    });
                }
                None => errors.push(FieldError::new(
                    format!("lines[{i}]"),
                    "the line total is too large",
                )),
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        let now = now_micros();
        Ok(Order {
            id: OrderId::new(),
            customer: Customer {
                id: self.customer.id.trim().to_string(),
                name: self.customer.name.trim().to_string(),
                email: self.customer.email.trim().to_string(),
            },
            currency: self.currency,
            lines,
            total,
            status: OrderStatus::Pending,
            version: 1,
            created_at: now,
            updated_at: now,
            history: Vec::new(),
            shipping_address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid_body() -> serde_json::Value {
        json!({
            "customer": {"id": "cust-42", "name": "Ada Lovelace", "email": "ada@example.com"},
            "currency": "EUR",
            "lines": [
                {"sku": "BOOK-1", "name": "Notes on the Engine", "quantity": 2, "unitPrice": 1250},
                {"sku": "PEN-7", "name": "Fountain pen", "quantity": 1, "unitPrice": 4999}
            ]
        })
    }

    fn decode(v: &serde_json::Value) -> Result<CreateOrderRequest, DecodeError> {
        decode_request(v.to_string().as_bytes())
    }

    fn field_errors(v: serde_json::Value) -> Vec<FieldError> {
        decode(&v).unwrap().validate().unwrap_err()
    }

    #[test]
    fn computes_line_totals_and_order_total() {
        let order = decode(&valid_body()).unwrap().validate().unwrap();
        assert_eq!(order.lines[0].line_total, 2500);
        assert_eq!(order.lines[1].line_total, 4999);
        assert_eq!(order.total, 7499);
        assert_eq!(order.version, 1);
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!(order.created_at, order.updated_at);
    }

    #[test]
    fn integral_numbers_with_a_fraction_or_exponent_are_integers() {
        let mut body = valid_body();
        body["lines"][0]["quantity"] = json!(2.0);
        body["lines"][0]["unitPrice"] = json!(1.25e3);
        let order = decode(&body).unwrap().validate().unwrap();
        assert_eq!(order.lines[0].quantity, 2);
        assert_eq!(order.lines[0].unit_price, 1250);

        // Beyond i64 in either notation: out of range, not a type error.
        let raw = valid_body()
            .to_string()
            .replace("\"unitPrice\":1250", "\"unitPrice\":1e300")
            .replace("\"quantity\":1,", "\"quantity\":18446744073709551615,");
        let errors = decode_request(raw.as_bytes())
            .unwrap()
            .validate()
            .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["lines[0].unitPrice", "lines[1].quantity"]);
    }

    #[test]
    fn rejects_non_json_and_empty_and_oversized_bodies() {
        assert!(matches!(
            decode_request(b"{not json"),
            Err(DecodeError::Syntax(_))
        ));
        assert!(matches!(decode_request(b"  "), Err(DecodeError::Empty)));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(matches!(
            decode_request(&big),
            Err(DecodeError::TooLarge(n)) if n == MAX_BODY_BYTES + 1
        ));
        let trailing = format!("{} trailing", valid_body());
        assert!(matches!(
            decode_request(trailing.as_bytes()),
            Err(DecodeError::Syntax(_))
        ));
    }

    #[test]
    fn names_the_field_of_a_missing_or_mistyped_value() {
        let mut body = valid_body();
        body["customer"].as_object_mut().unwrap().remove("email");
        match decode(&body) {
            Err(DecodeError::Field(e)) => {
                assert_eq!(e.field, "customer");
                assert!(e.message.contains("missing field `email`"), "{}", e.message);
            }
            other => panic!("unexpected {other:?}"),
        }

        let mut body = valid_body();
        body["lines"][1]["unitPrice"] = json!(12.5);
        match decode(&body) {
            Err(DecodeError::Field(e)) => {
                assert_eq!(e.field, "lines[1].unitPrice");
                assert_eq!(e.message, "expected an integer, got 12.5");
            }
            other => panic!("unexpected {other:?}"),
        }

        let mut body = valid_body();
        body["lines"][0]["unit_price"] = json!(1);
        match decode(&body) {
            Err(DecodeError::Field(e)) => {
                assert_eq!(e.field, "lines[0].unit_price");
                assert!(e.message.contains("unknown field"), "{}", e.message);
            }
            other => panic!("unexpected {other:?}"),
        }

        match decode(&json!([1, 2])) {
            Err(DecodeError::Field(e)) => assert_eq!(e.field, ""),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_out_of_range_values_with_their_paths() {
        let mut body = valid_body();
        body["lines"][0]["quantity"] = json!(0);
        body["lines"][1]["quantity"] = json!(-3);
        body["lines"][1]["unitPrice"] = json!(-1);
        body["currency"] = json!("ABC");
        body["customer"]["email"] = json!("not-an-email");
        body["customer"]["name"] = json!("x".repeat(201));
        let errors = field_errors(body);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "customer.name",
                "customer.email",
                "currency",
                "lines[0].quantity",
                "lines[1].quantity",
                "lines[1].unitPrice"
            ]
        );
    }

    #[test]
    fn rejects_unknown_lowercase_and_unitless_currencies() {
        for code in ["eur", "XXXX", "", "XAU"] {
            let mut body = valid_body();
            body["currency"] = json!(code);
            let errors = field_errors(body);
            assert_eq!(errors[0].field, "currency", "{code}");
        }
        let mut body = valid_body();
        body["currency"] = json!("JPY");
        assert!(decode(&body).unwrap().validate().is_ok());
    }

    #[test]
    fn enforces_line_count_bounds() {
        let mut body = valid_body();
        body["lines"] = json!([]);
        assert_eq!(field_errors(body)[0].field, "lines");

        let line = json!({"sku": "A", "name": "a", "quantity": 1, "unitPrice": 1});
        let mut body = valid_body();
        body["lines"] = json!(vec![line.clone(); MAX_LINES]);
        assert_eq!(decode(&body).unwrap().validate().unwrap().total, 100);
        body["lines"] = json!(vec![line; MAX_LINES + 1]);
        assert_eq!(field_errors(body)[0].field, "lines");
    }

    #[test]
    fn rejects_blank_and_control_character_text() {
        let mut body = valid_body();
        body["customer"]["id"] = json!("   ");
        body["lines"][0]["sku"] = json!("A\u{0007}B");
        let errors = field_errors(body);
        assert_eq!(errors[0].field, "customer.id");
        assert_eq!(errors[1].field, "lines[0].sku");
    }

    #[test]
    fn a_customer_who_can_order_can_list_counting_characters_not_bytes() {
        // 40 characters of 3 bytes each: 120 bytes, well within 64 characters.
        let wide = "顧".repeat(40);
        let mut body = valid_body();
        body["customer"]["id"] = json!(wide);
        assert!(decode(&body).unwrap().validate().is_ok());
        assert!(is_valid_customer_id(&wide));
        let too_long = "é".repeat(MAX_CUSTOMER_ID_CHARS + 1);
        let mut body = valid_body();
        body["customer"]["id"] = json!(too_long);
        assert_eq!(field_errors(body)[0].field, "customer.id");
        assert!(!is_valid_customer_id(&too_long));
        for bad in ["", "  ", "a\u{0}b"] {
            assert!(!is_valid_customer_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_optional_shipping_address_is_checked_and_trimmed() {
        let mut body = valid_body();
        body["shippingAddress"] = json!({"recipient": " Ada ", "line1": "1 Engine Way",
            "city": "London", "postalCode": "N1 9GU", "country": "GB"});
        let order = decode(&body).unwrap().validate().unwrap();
        let address = order.shipping_address.unwrap();
        assert_eq!((address.recipient.as_str(), address.line2), ("Ada", None));
        body["shippingAddress"]["country"] = json!("gb");
        body["shippingAddress"]["city"] = json!(" ");
        let fields: Vec<_> = field_errors(body).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["shippingAddress.city", "shippingAddress.country"]);
        assert_eq!(
            decode(&valid_body())
                .unwrap()
                .validate()
                .unwrap()
                .shipping_address,
            None
        );
    }

    #[test]
    fn largest_allowed_values_do_not_overflow() {
        let line =
            json!({"sku": "A", "name": "a", "quantity": MAX_QUANTITY, "unitPrice": MAX_UNIT_PRICE});
        let mut body = valid_body();
        body["lines"] = json!(vec![line; MAX_LINES]);
        let order = decode(&body).unwrap().validate().unwrap();
        assert_eq!(
            order.total,
            MAX_QUANTITY * MAX_UNIT_PRICE * MAX_LINES as i64
        );
    }
}
