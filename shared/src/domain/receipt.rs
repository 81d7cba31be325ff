//! The documents stored beside each order version: the HTML receipt, and for the cancelled
//! version also the cancellation notice (which repeats the receipt). Keys are fixed per order
//! and the content under each key is a pure function of the order that does not change between
//! the versions that write it, so every retry, rebuild or concurrent write stores the same
//! bytes, and whichever version lands last (events may arrive in any order) leaves every
//! document its view links to. Programs read the receipt's data from the view
//! (`GET /orders/{id}`), not from S3.

use super::order::{Customer, Order, OrderId, OrderLine, OrderStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One object to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub key: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// What the customer bought and for how much. Status changes do not alter it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub order_id: OrderId,
    pub customer: Customer,
    pub currency: String,
    pub lines: Vec<OrderLine>,
    pub total: i64,
    #[serde(with = "crate::domain::timestamp")]
    pub issued_at: OffsetDateTime,
}

/// The key of the HTML receipt.
pub fn receipt_key(id: OrderId) -> String {
    format!("receipts/{id}/receipt.html")
}

/// The key of the cancellation notice.
pub fn cancellation_key(id: OrderId) -> String {
    format!("receipts/{id}/cancellation.html")
}

impl Receipt {
    pub fn for_order(order: &Order) -> Self {
        Self {
            order_id: order.id,
            customer: order.customer.clone(),
            currency: order.currency.clone(),
            lines: order.lines.clone(),
            total: order.total,
            issued_at: order.created_at,
        }
    }
}

/// The objects an order version writes: the receipt, and once the order is cancelled (a
/// terminal status, so only one version does) the cancellation notice too. The cancelled
/// version writes the receipt as well because the earlier versions' events may arrive after
/// it (and be skipped as stale) and a rebuild projects only the latest version.
pub fn documents(order: &Order) -> Vec<Document> {
    let receipt = Document {
        key: receipt_key(order.id),
        content_type: "text/html; charset=utf-8",
        body: receipt_html(&Receipt::for_order(order)).into_bytes(),
    };
    match cancellation_html(order) {
        Some(html) => vec![
            receipt,
            Document {
                key: cancellation_key(order.id),
                content_type: "text/html; charset=utf-8",
                body: html.into_bytes(),
            },
        ],
        None => vec![receipt],
    }
}

/// An amount in minor units written in major units, e.g. `39.98 EUR` or `1200 JPY`.
pub fn format_money(minor: i64, currency: &str) -> String {
    let exponent = iso_currency::Currency::from_code(currency)
        .and_then(|c| c.exponent())
        .unwrap_or(2) as u32;
    if exponent == 0 {
        return format!("{minor} {currency}");
    }
    let scale = 10i64.pow(exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!(
        "{sign}{}.{:0width$} {currency}",
        abs / scale as u64,
        abs % scale as u64,
        width = exponent as usize
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn rfc3339(at: OffsetDateTime) -> String {
    super::timestamp::format(at)
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}\
         table{{border-collapse:collapse;width:100%}}td,th{{padding:.3em;border-bottom:1px solid #ccc;text-align:left}}\
         .n{{text-align:right}}</style></head>\n<body>\n{}\n</body></html>\n",
        escape(title),
        body
    )
}

/// The receipt as a standalone HTML page.
pub fn receipt_html(receipt: &Receipt) -> String {
    page(
        &format!("Receipt {}", receipt.order_id),
        &receipt_section(receipt),
    )
}

fn receipt_section(receipt: &Receipt) -> String {
    let rows: String = receipt
        .lines
        .iter()
        .map(|l| {
            format!(
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
                escape(&l.sku),
                escape(&l.name),
                l.quantity,
                format_money(l.unit_price, &receipt.currency),
                format_money(l.line_total, &receipt.currency)
            )
        })
        .collect();
    format!(
        "<h1>Receipt</h1>\n<p>Order <code>{id}</code><br>Issued {issued}</p>\n\
         <p>{name} &lt;{email}&gt;<br>Customer {customer}</p>\n\
         <table><thead><tr><th>SKU</th><th>Item</th><th class=\"n\">Qty</th><th class=\"n\">Unit price</th><th class=\"n\">Line total</th></tr></thead>\n\
         <tbody>\n{rows}</tbody>\n<tfoot><tr><th colspan=\"4\">Total</th><th class=\"n\">{total}</th></tr></tfoot></table>",
        id = receipt.order_id,
        issued = rfc3339(receipt.issued_at),
        name = escape(&receipt.customer.name),
        email = escape(&receipt.customer.email),
        customer = escape(&receipt.customer.id),
        total = format_money(receipt.total, &receipt.currency),
    )
}

/// The cancellation notice, for a cancelled order, followed by the receipt it cancels.
pub fn cancellation_html(order: &Order) -> Option<String> {
    if order.status != OrderStatus::Cancelled {
        return None;
    }
    let change = order
        .history
        .iter()
        .rev()
        .find(|c| c.to == OrderStatus::Cancelled);
    let at = change.map(|c| c.at).unwrap_or(order.updated_at);
    let reason = change
        .and_then(|c| c.reason.as_deref())
        .map(|r| format!("<p>Reason: {}</p>\n", escape(r)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Order cancelled</h1>\n<p>Order <code>{}</code> placed {} by {} was cancelled on {}.</p>\n{reason}\
         <p>Amount not charged or refunded: {}</p>\n{}",
        order.id,
        rfc3339(order.created_at),
        escape(&order.customer.name),
        rfc3339(at),
        format_money(order.total, &order.currency),
        receipt_section(&Receipt::for_order(order)),
    );
    Some(page(&format!("Cancellation {}", order.id), &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::tests::sample_event;
    use crate::domain::order::now_micros;

    #[test]
    fn money_is_written_with_the_currency_exponent() {
        assert_eq!(format_money(3998, "EUR"), "39.98 EUR");
        assert_eq!(format_money(5, "USD"), "0.05 USD");
        assert_eq!(format_money(1200, "JPY"), "1200 JPY");
        assert_eq!(format_money(1234, "BHD"), "1.234 BHD");
    }

    #[test]
    fn every_version_before_cancellation_writes_the_same_receipt() {
        let order = sample_event().order;
        let confirmed = order
            .with_status(OrderStatus::Confirmed, now_micros(), None)
            .unwrap();
        assert_eq!(documents(&order), documents(&confirmed));
        let [doc] = <[Document; 1]>::try_from(documents(&order)).unwrap();
        assert_eq!(doc.key, receipt_key(order.id));
        assert_eq!(doc.content_type, "text/html; charset=utf-8");
        let html = String::from_utf8(doc.body).unwrap();
        assert!(html.contains("7.50 EUR") && html.contains(&order.id.to_string()));
    }

    #[test]
    fn the_cancelled_version_writes_the_receipt_and_a_notice_that_repeats_it_and_escapes_text() {
        let mut order = sample_event().order;
        order.customer.name = "<script>alert(1)</script>".into();
        let cancelled = order
            .with_status(
                OrderStatus::Cancelled,
                now_micros(),
                Some("too \"late\"".into()),
            )
            .unwrap();
        let [receipt, doc] = <[Document; 2]>::try_from(documents(&cancelled)).unwrap();
        assert_eq!(receipt, documents(&order)[0], "the same receipt bytes");
        assert_eq!(doc.key, cancellation_key(order.id));
        let html = String::from_utf8(doc.body).unwrap();
        assert!(html.contains("too &quot;late&quot;"));
        assert!(html.contains("<h1>Receipt</h1>") && html.contains("7.50 EUR"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
    }
}
