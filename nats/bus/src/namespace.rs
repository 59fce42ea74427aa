//! A prefix for every subject, stream and durable consumer name.
//!
//! Production runs with the empty namespace (`orders.created`, `ORDERS`, `stock-orders-created`).
//! Tests each take a random one (`t1a2b3c4.orders.created`, `T1A2B3C4_ORDERS`,
//! `t1a2b3c4-stock-orders-created`) so they can run in parallel against one server and clean up
//! after themselves.

use std::fmt;
use std::str::FromStr;

/// A validated namespace: empty, or lowercase ASCII letters and digits starting with a letter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Namespace(String);

/// The namespace text was not lowercase letters and digits.
#[derive(Debug, thiserror::Error)]
#[error("invalid NATS namespace {0:?}: use lowercase letters and digits, starting with a letter")]
pub struct InvalidNamespace(String);

impl Namespace {
    /// The production namespace: names are used as they are.
    pub fn none() -> Self {
        Self(String::new())
    }

    pub fn new(prefix: &str) -> Result<Self, InvalidNamespace> {
        let valid = prefix.is_empty()
            || (prefix.starts_with(|c: char| c.is_ascii_lowercase())
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        if valid {
            Ok(Self(prefix.to_owned()))
        } else {
            Err(InvalidNamespace(prefix.to_owned()))
        }
    }

    /// A fresh namespace for one test: `t` and 8 hex digits.
    pub fn random() -> Self {
        Self(format!(
            "t{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
    }

    pub fn is_none(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `orders.created` -> `t1a2b.orders.created`.
    pub fn subject(&self, base: &str) -> String {
        if self.is_none() {
            base.to_owned()
        } else {
            format!("{}.{base}", self.0)
        }
    }

    /// `t1a2b.orders.created` -> `orders.created`; `None` when the subject is not in this namespace.
    pub fn strip_subject<'a>(&self, subject: &'a str) -> Option<&'a str> {
        if self.is_none() {
            Some(subject)
        } else {
            subject
                .strip_prefix(self.0.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
        }
    }

    /// `ORDERS` -> `T1A2B_ORDERS`.
    pub fn stream(&self, base: &str) -> String {
        if self.is_none() {
            base.to_owned()
        } else {
            format!("{}_{base}", self.0.to_ascii_uppercase())
        }
    }

    /// `stock-orders-created` -> `t1a2b-stock-orders-created`.
    pub fn durable(&self, base: &str) -> String {
        if self.is_none() {
            base.to_owned()
        } else {
            format!("{}-{base}", self.0)
        }
    }
}

impl FromStr for Namespace {
    type Err = InvalidNamespace;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_namespace_leaves_names_alone() {
        let ns = Namespace::none();
        assert_eq!(ns.subject("orders.created"), "orders.created");
        assert_eq!(ns.stream("ORDERS"), "ORDERS");
        assert_eq!(ns.durable("stock-orders-created"), "stock-orders-created");
        assert_eq!(ns.strip_subject("orders.created"), Some("orders.created"));
    }

    #[test]
    fn a_namespace_prefixes_every_kind_of_name() {
        let ns = Namespace::new("t1a2b").unwrap();
        assert_eq!(ns.subject("orders.created"), "t1a2b.orders.created");
        assert_eq!(ns.stream("ORDERS"), "T1A2B_ORDERS");
        assert_eq!(
            ns.durable("stock-orders-created"),
            "t1a2b-stock-orders-created"
        );
        assert_eq!(
            ns.strip_subject("t1a2b.orders.created"),
            Some("orders.created")
        );
        assert_eq!(ns.strip_subject("orders.created"), None);
        assert_eq!(ns.strip_subject("t1a2bx.orders.created"), None);
    }

    #[test]
    fn namespaces_reject_characters_that_break_subjects_or_stream_names() {
        for bad in ["T1", "a.b", "a-b", "a b", "1abc", "a>", "a*"] {
            assert!(Namespace::new(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Namespace::random().as_str().starts_with('t'));
    }
}
