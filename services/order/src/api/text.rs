//! [`JsonString`]: a request field documented as `type: string` that only a JSON string fills.
//! poem-openapi's `String` also takes numbers and booleans (`"password": 12345678` becomes
//! `"12345678"`), so a body the spec calls invalid would be accepted.

use std::borrow::Cow;
use std::ops::Deref;

use poem_openapi::registry::MetaSchemaRef;
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// A string field that refuses every other JSON type (400, naming the field).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonString(pub String);

impl Deref for JsonString {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for JsonString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl Type for JsonString {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        String::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        String::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for JsonString {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Ok(Self(text)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for JsonString {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_json_string_is_a_string() {
        assert_eq!(
            JsonString::parse_from_json(Some(json!("12345678"))).unwrap(),
            JsonString::from("12345678")
        );
        for other in [json!(12345678), json!(true), json!(null), json!(["a"])] {
            assert!(
                JsonString::parse_from_json(Some(other.clone())).is_err(),
                "{other}"
            );
        }
    }
}
