//! Amount (positive minor units) and currency (an active ISO 4217 code), parsed once at the edge,
//! and `Money`: the two together, as a transaction carries them (both or neither).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A positive amount in minor units (cents). Its JSON is the bare integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Amount(i64);

impl TryFrom<i64> for Amount {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Amount> for i64 {
    fn from(a: Amount) -> Self {
        a.0
    }
}

impl Amount {
    /// Accepts integers greater than zero.
    pub fn parse(value: i64) -> Result<Self, String> {
        if value > 0 {
            Ok(Self(value))
        } else {
            Err(format!(
                "must be a positive integer of minor units, got {value}"
            ))
        }
    }

    /// The amount in minor units.
    pub fn minor_units(&self) -> i64 {
        self.0
    }
}

/// A currency: one of the active ISO 4217 alphabetic codes, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// Active ISO 4217 alphabetic codes (list of 2024, funds and precious metals excluded): a
/// data file, sorted, one code per line.
const ISO_4217: &str = include_str!("iso_4217.txt");

/// Whether `code` is on the list.
fn is_active_code(code: &str) -> bool {
    ISO_4217.lines().any(|known| known == code)
}

impl Currency {
    /// Accepts an active ISO 4217 code in upper case, e.g. `EUR`.
    pub fn parse(code: &str) -> Result<Self, String> {
        if is_active_code(code) {
            let b = code.as_bytes();
            Ok(Self([b[0], b[1], b[2]]))
        } else {
            Err(format!(
                "must be an ISO 4217 currency code such as \"EUR\", got {code:?}"
            ))
        }
    }

    /// The code, e.g. `EUR`.
    pub fn as_str(&self) -> &str {
        // Only ASCII codes from the list are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in a currency. A transaction has both or neither, so it carries `Option<Money>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Minor units.
    pub amount: Amount,
    /// ISO 4217 code.
    pub currency: Currency,
}

/// Which parts of two optional `Money` values differ (`amount`, `currency`), in that order;
/// absent differs from present in both parts.
pub fn differing_parts(a: Option<Money>, b: Option<Money>) -> Vec<&'static str> {
    let amounts = (a.map(|m| m.amount), b.map(|m| m.amount));
    let currencies = (a.map(|m| m.currency), b.map(|m| m.currency));
    let mut parts = Vec::new();
    if amounts.0 != amounts.1 {
        parts.push("amount");
    }
    if currencies.0 != currencies.1 {
        parts.push("currency");
    }
    parts
}

/// Stored money that is only half there (an amount without a currency, or the reverse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("money is half there or invalid: amount {amount:?}, currency {currency:?}")]
pub struct InvalidMoney {
    /// The stored amount.
    pub amount: Option<i64>,
    /// The stored currency.
    pub currency: Option<String>,
}

impl Money {
    /// Rebuilds money from its stored parts (Postgres columns, id cache fields): both or neither.
    pub fn from_parts(
        amount: Option<i64>,
        currency: Option<&str>,
    ) -> Result<Option<Money>, InvalidMoney> {
        let invalid = || InvalidMoney {
            amount,
            currency: currency.map(str::to_string),
        };
        match (amount, currency) {
            (None, None) => Ok(None),
            (Some(a), Some(c)) => Ok(Some(Money {
                amount: Amount::parse(a).map_err(|_| invalid())?,
                currency: Currency::parse(c).map_err(|_| invalid())?,
            })),
            _ => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_list_holds_sorted_three_letter_upper_case_codes() {
        let codes: Vec<&str> = ISO_4217.lines().collect();
        assert!(codes.len() > 150, "{} codes", codes.len());
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
    }

    #[test]
    fn currencies_are_iso_codes_in_upper_case() {
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
        for bad in ["eur", "EURO", "XXX", "", "ABC", "E"] {
            assert!(Currency::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn money_round_trips_through_its_stored_parts_and_keeps_its_json() {
        let eur = Money {
            amount: Amount::parse(500).unwrap(),
            currency: Currency::parse("EUR").unwrap(),
        };
        assert_eq!(Money::from_parts(Some(500), Some("EUR")), Ok(Some(eur)));
        assert_eq!(Money::from_parts(None, None), Ok(None));
        assert!(Money::from_parts(Some(500), None).is_err());
        assert!(Money::from_parts(None, Some("EUR")).is_err());
        assert!(Money::from_parts(Some(0), Some("EUR")).is_err());
        assert_eq!(
            serde_json::to_value(eur).unwrap(),
            serde_json::json!({"amount": 500, "currency": "EUR"})
        );
    }

    #[test]
    fn differing_parts_name_each_field_and_absent_differs_from_present() {
        let m = |a, c| {
            Some(Money {
                amount: Amount::parse(a).unwrap(),
                currency: Currency::parse(c).unwrap(),
            })
        };
        assert!(differing_parts(m(5, "EUR"), m(5, "EUR")).is_empty());
        assert_eq!(differing_parts(m(5, "EUR"), m(6, "EUR")), ["amount"]);
        assert_eq!(differing_parts(m(5, "EUR"), m(5, "USD")), ["currency"]);
        assert_eq!(differing_parts(None, m(5, "USD")), ["amount", "currency"]);
        assert!(differing_parts(None, None).is_empty());
    }

    #[test]
    fn amounts_are_positive() {
        assert_eq!(Amount::parse(1).unwrap().minor_units(), 1);
        assert!(Amount::parse(0).is_err());
        assert!(Amount::parse(-5).is_err());
        assert!(
            serde_json::from_str::<Amount>("0").is_err(),
            "JSON is parsed too"
        );
    }
}
