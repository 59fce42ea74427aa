//! The rules the handlers enforce, written into the spec poem-openapi derives, so the spec tells
//! the truth. The rules themselves stay in the domain code, which answers 422 naming the
//! field as the client wrote it; poem-openapi's validators would answer 400 without that. So the
//! derived spec is completed here, from the same constants, and a test checks every entry still
//! names a property that exists.

use serde_json::{Value, json};

use crate::auth::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use crate::domain;

use super::orders::{MAX_PAGE, MAX_PER_PAGE};

/// An email address as registration accepts it: something, `@`, a domain with a dot; no
/// whitespace or control characters. At most 254 characters.
pub const EMAIL_PATTERN: &str =
    r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*$";
pub const MAX_EMAIL_CHARS: usize = domain::MAX_EMAIL_CHARS;
/// A merchant name as sign-up keeps it: no control characters, no whitespace at either end
/// (it is trimmed, so such a name would not be the one stored).
pub const MERCHANT_NAME_PATTERN: &str =
    r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$";

/// (schema, property, constraints merged into the property's schema).
fn property_rules() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "Credentials",
            "email",
            json!({ "maxLength": MAX_EMAIL_CHARS, "pattern": EMAIL_PATTERN }),
        ),
        (
            "Credentials",
            "password",
            json!({ "minLength": MIN_PASSWORD_CHARS, "maxLength": MAX_PASSWORD_CHARS, "pattern": "^[^\\x00]*$" }),
        ),
        (
            "PlaceOrder",
            "products",
            json!({ "minItems": 1, "maxItems": domain::MAX_LINES }),
        ),
        (
            "OrderLineRequest",
            "quantity",
            json!({ "minimum": 1, "maximum": domain::MAX_QUANTITY }),
        ),
        ("Restock", "amount", json!({ "minimum": 1 })),
        (
            "MerchantSignUp",
            "name",
            json!({ "minLength": 1, "maxLength": domain::MAX_MERCHANT_NAME_CHARS, "pattern": MERCHANT_NAME_PATTERN }),
        ),
        (
            "MerchantSignUp",
            "alert_email",
            json!({ "maxLength": MAX_EMAIL_CHARS, "pattern": EMAIL_PATTERN }),
        ),
        (
            "MerchantSignUp",
            "currency",
            json!({ "pattern": "^[A-Z]{3}$" }),
        ),
        (
            "MerchantSignUp",
            "email",
            json!({ "maxLength": MAX_EMAIL_CHARS, "pattern": EMAIL_PATTERN }),
        ),
        (
            "MerchantSignUp",
            "password",
            json!({ "minLength": MIN_PASSWORD_CHARS, "maxLength": MAX_PASSWORD_CHARS, "pattern": "^[^\\x00]*$" }),
        ),
    ]
}

/// (path, method, parameter, constraints merged into the parameter's schema).
fn parameter_rules() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    vec![
        (
            "/orders",
            "get",
            "page",
            json!({ "minimum": 1, "maximum": MAX_PAGE }),
        ),
        (
            "/orders",
            "get",
            "per_page",
            json!({ "minimum": 1, "maximum": MAX_PER_PAGE }),
        ),
        (
            "/dead-letters/{sequence}/replay",
            "post",
            "sequence",
            json!({ "minimum": 1, "maximum": u64::MAX }),
        ),
        (
            "/order",
            "post",
            "Idempotency-Key",
            json!({ "minLength": 1, "maxLength": 255, "pattern": "^[ -~]*[!-~][ -~]*$" }),
        ),
    ]
}

/// (path, method, status, the schema of one event) of each `text/event-stream` response.
/// poem-openapi describes a stream as an array of its items; before OpenAPI 3.2's `itemSchema`,
/// a media type's `schema` describes one event, and that is how clients and schemathesis read
/// it: an object of the SSE fields, whose `data` is JSON.
fn event_stream_rules() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    vec![
        (
            "/merchant/events",
            "get",
            "200",
            json!({
                "type": "object",
                "description": "One Server-Sent Event: `event`: the kind of `data`, `data`: the \
                                event as JSON (its `kind` repeats `event`).",
                "required": ["event", "data"],
                "properties": {
                    "event": {
                        "type": "string",
                        "enum": ["orders", "order", "ingredients", "alerts", "dead_letters"],
                    },
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": { "$ref": "#/components/schemas/FeedEvent" },
                    },
                },
            }),
        ),
        (
            "/order/{id}/events",
            "get",
            "200",
            json!({
                "type": "object",
                "description": "One Server-Sent Event: `event: status`, `id`: the change's id (resume \
                                after it with `Last-Event-ID`), `data`: the change as JSON.",
                "required": ["event", "id", "data"],
                "properties": {
                    "event": { "type": "string", "enum": ["status"] },
                    "id": { "type": "string", "pattern": "^[0-9]+$" },
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": { "$ref": "#/components/schemas/StatusEvent" },
                    },
                },
            }),
        ),
    ]
}

/// Request bodies that refuse unknown fields (`deny_unknown_fields`): `additionalProperties: false`.
const CLOSED_SCHEMAS: &[&str] = &[
    "Credentials",
    "MerchantSignUp",
    "PlaceOrder",
    "OrderLineRequest",
    "CourierUpdate",
    "Restock",
];

/// Completes the derived spec (poem-openapi's JSON text), keeping its key order; every rule must
/// find its target (see the test).
pub fn complete(spec: &str) -> Result<String, String> {
    let mut spec: Json = serde_json::from_str(spec).map_err(|e| e.to_string())?;
    for (schema, property, rules) in property_rules() {
        let target = spec
            .path(&["components", "schemas", schema, "properties", property])
            .ok_or_else(|| format!("no property {schema}.{property}"))?;
        target.merge(rules);
    }
    for (path, method, name, rules) in parameter_rules() {
        let Some(Json::Array(parameters)) = spec.path(&["paths", path, method, "parameters"])
        else {
            return Err(format!("no parameters on {method} {path}"));
        };
        let parameter = parameters
            .iter_mut()
            .find(|p| matches!(p.get("name"), Some(Json::Leaf(Value::String(n))) if n == name))
            .ok_or_else(|| format!("no parameter {name} on {method} {path}"))?;
        parameter
            .path(&["schema"])
            .ok_or_else(|| format!("no schema for {name} on {method} {path}"))?
            .merge(rules);
    }
    for (path, method, status, event) in event_stream_rules() {
        let Some(Json::Object(fields)) = spec.path(&[
            "paths",
            path,
            method,
            "responses",
            status,
            "content",
            "text/event-stream",
        ]) else {
            return Err(format!("no event stream on {method} {path} {status}"));
        };
        let (_, schema) = fields
            .iter_mut()
            .find(|(key, _)| key == "schema")
            .ok_or_else(|| format!("no event stream schema on {method} {path}"))?;
        *schema = Json::Leaf(event);
    }
    for schema in CLOSED_SCHEMAS {
        spec.path(&["components", "schemas", schema])
            .ok_or_else(|| format!("no schema {schema}"))?
            .merge(json!({ "additionalProperties": false }));
    }
    serde_json::to_string_pretty(&spec).map_err(|e| e.to_string())
}

/// JSON that keeps its objects' key order (serde_json's `Value` sorts them unless its
/// `preserve_order` feature is on, which would change every crate's JSON maps).
#[derive(Debug)]
enum Json {
    Leaf(Value),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn path(&mut self, keys: &[&str]) -> Option<&mut Json> {
        let mut here = self;
        for key in keys {
            let Json::Object(fields) = here else {
                return None;
            };
            here = fields.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)?;
        }
        Some(here)
    }

    /// Adds (or replaces) the fields of `rules`, an object, at the end of this object.
    fn merge(&mut self, rules: Value) {
        let (Json::Object(fields), Value::Object(rules)) = (self, rules) else {
            return;
        };
        for (key, value) in rules {
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some((_, existing)) => *existing = Json::Leaf(value),
                None => fields.push((key, Json::Leaf(value))),
            }
        }
    }
}

impl serde::Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Json::Leaf(value) => value.serialize(serializer),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
                Ok(Json::Leaf(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Leaf(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Leaf(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
                Ok(Json::Leaf(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::Leaf(Value::String(v.to_owned())))
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Leaf(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Json::Object(fields))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_finds_its_property_in_the_derived_spec() {
        let spec = complete(&super::super::service().spec()).unwrap();
        let spec: Value = serde_json::from_str(&spec).unwrap();
        assert_eq!(
            spec["components"]["schemas"]["Credentials"]["properties"]["password"]["minLength"],
            MIN_PASSWORD_CHARS
        );
        assert_eq!(
            spec["components"]["schemas"]["PlaceOrder"]["additionalProperties"],
            false
        );
    }
}
