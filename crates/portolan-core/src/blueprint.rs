//! Blueprints: Port's data model (docs/reference/port-api.md §1). Wire shape in, wire shape out.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A blueprint as Port's API accepts and returns it (without the read-only meta fields,
/// which the store keeps in columns of their own).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Blueprint {
    pub identifier: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Value>,
    #[serde(default)]
    pub schema: BlueprintSchema,
    #[serde(default)]
    pub calculation_properties: IndexMap<String, CalculationProperty>,
    #[serde(default)]
    pub mirror_properties: IndexMap<String, MirrorProperty>,
    #[serde(default)]
    pub aggregation_properties: IndexMap<String, Value>,
    #[serde(default)]
    pub relations: IndexMap<String, Relation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changelog_destination: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_in_global_search: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_inheritance: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct BlueprintSchema {
    #[serde(default)]
    pub properties: IndexMap<String, Property>,
    #[serde(default)]
    pub required: Vec<String>,
}

/// The five JSON types a property (or calculation property) can have.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PropType {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

impl PropType {
    pub fn as_str(self) -> &'static str {
        match self {
            PropType::String => "string",
            PropType::Number => "number",
            PropType::Boolean => "boolean",
            PropType::Object => "object",
            PropType::Array => "array",
        }
    }
}

/// One `schema.properties.<id>` entry. The keys Portolan understands are typed; every other
/// key is kept verbatim in `rest` and returned as it was sent (Terraform round-trips them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    #[serde(rename = "type")]
    pub ty: PropType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Property {
    /// A numeric or other keyword from the untyped remainder (`minimum`, `pattern`, …).
    pub fn keyword(&self, key: &str) -> Option<&Value> {
        self.rest.get(key)
    }
    /// `items.type` of an array property.
    pub fn items_type(&self) -> Option<&str> {
        self.items.as_ref()?.get("type")?.as_str()
    }
    /// `items.format` of an array property.
    pub fn items_format(&self) -> Option<&str> {
        self.items.as_ref()?.get("format")?.as_str()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Relation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub target: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub many: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MirrorProperty {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Dot-joined relation identifiers ending with a property or meta-property of the final
    /// target: `domain.owner`, `system.domain.$title`.
    pub path: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl MirrorProperty {
    /// Split the path into the relation hops and the final property.
    pub fn hops(&self) -> (Vec<&str>, &str) {
        let mut parts: Vec<&str> = self.path.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        (parts, last)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CalculationProperty {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub calculation: String,
    #[serde(rename = "type")]
    pub ty: PropType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}
