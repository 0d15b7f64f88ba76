//! The OpenRPC document of the JSON-RPC API, generated from the method table and the
//! params/result types. `docs/openrpc.json` is this document, checked in; a test fails when
//! the two differ (regenerate with `UPDATE_OPENRPC=1 cargo test --lib openrpc`).

use super::methods::METHODS;
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

/// The document, deterministic (sorted schemas, table order for methods).
pub fn document() -> Value {
    let mut gen = SchemaSettings::draft07()
        .with(|s| s.definitions_path = "#/components/schemas/".into())
        .into_generator();
    let mut methods = Vec::new();
    for m in METHODS {
        let params = (m.params_schema)(&mut gen).to_value();
        let result = (m.result_schema)(&mut gen).to_value();
        methods.push(json!({
            "name": m.name,
            "summary": m.summary,
            "x-minimum-role": m.min_role.map(|r| r.as_str()),
            "paramStructure": "by-name",
            "params": params_of(&params, &gen),
            "result": {"name": "result", "schema": result},
        }));
    }
    let schemas: Map<String, Value> = gen
        .take_definitions(true)
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    json!({
        "openrpc": "1.3.2",
        "info": {
            "title": "camera-service JSON-RPC API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "JSON-RPC 2.0 over WebSocket (ws://HOST:PORT/ws); see docs/api.md. Generated from src/api/methods.rs.",
        },
        "methods": methods,
        "components": {"schemas": schemas},
    })
}

/// The params object's schema → one content descriptor per member.
fn params_of(schema: &Value, gen: &schemars::SchemaGenerator) -> Vec<Value> {
    let resolved = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => gen
            .definitions()
            .get(r.trim_start_matches("#/components/schemas/"))
            .cloned()
            .unwrap_or_default(),
        None => schema.clone(),
    };
    let required: Vec<&str> = resolved
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = resolved.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, s)| {
            let mut d = json!({"name": name, "required": required.contains(&name.as_str()), "schema": s});
            if let Some(desc) = s.get("description") {
                d["description"] = desc.clone();
            }
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openrpc_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openrpc.json");
        let text = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var_os("UPDATE_OPENRPC").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == text,
            "docs/openrpc.json drifted from the method table; regenerate it with \
             `UPDATE_OPENRPC=1 cargo test --lib openrpc` and review the diff"
        );
    }

    #[test]
    fn every_method_has_a_result_schema_and_named_params() {
        let doc = document();
        let methods = doc["methods"].as_array().unwrap();
        assert_eq!(methods.len(), METHODS.len());
        let take = methods.iter().find(|m| m["name"] == "take_snapshot").unwrap();
        let device = take["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "device")
            .unwrap();
        assert_eq!(device["required"], true);
        let ping = methods.iter().find(|m| m["name"] == "ping").unwrap();
        assert_eq!(ping["params"], json!([]));
        assert!(doc["components"]["schemas"]["CameraView"].is_object(), "{doc}");
    }
}
