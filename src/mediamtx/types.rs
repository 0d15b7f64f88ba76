//! MediaMTX v1.20.1 API types, field for field with `openapi.yaml` (only what we use; the
//! rest of a response is ignored). Request bodies send only the fields that are `Some`,
//! because MediaMTX rejects unknown fields and `replace` resets unsent ones to defaults.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathConf {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_on_demand: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_on_demand_start_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_on_demand_close_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtsp_transport: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_on_demand: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_on_demand_restart: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_on_demand_start_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_on_demand_close_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_part_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_segment_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_delete_after: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct PathConfList {
    #[serde(rename = "itemCount", default)]
    pub item_count: u64,
    #[serde(rename = "pageCount", default)]
    pub page_count: u64,
    #[serde(default)]
    pub items: Vec<PathConf>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct PathSource {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct PathReader {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodecProps {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub profile: Option<String>,
    pub level: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathTrack {
    #[serde(default)]
    pub codec: String,
    pub codec_props: Option<CodecProps>,
}

/// Runtime state of a path (`/v3/paths/get/{name}`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Path {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub conf_name: String,
    pub source: Option<PathSource>,
    #[serde(default)]
    pub available: bool,
    pub available_time: Option<String>,
    #[serde(default)]
    pub online: bool,
    #[serde(default)]
    pub tracks2: Vec<PathTrack>,
    #[serde(default)]
    pub inbound_bytes: u64,
    #[serde(default)]
    pub outbound_bytes: u64,
    #[serde(default)]
    pub readers: Vec<PathReader>,
}

impl Path {
    /// First video track: (codec, width, height).
    pub fn video(&self) -> Option<(&str, Option<u32>, Option<u32>)> {
        const VIDEO: [&str; 6] = ["H264", "H265", "AV1", "VP9", "VP8", "MJPEG"];
        self.tracks2
            .iter()
            .find(|t| VIDEO.contains(&t.codec.as_str()))
            .map(|t| {
                let p = t.codec_props.as_ref();
                (t.codec.as_str(), p.and_then(|p| p.width), p.and_then(|p| p.height))
            })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct PathList {
    #[serde(rename = "pageCount", default)]
    pub page_count: u64,
    #[serde(default)]
    pub items: Vec<Path>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Info {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub started: String,
}

/// `{"status":"error","error":"..."}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies_carry_only_set_fields_in_camel_case() {
        let c = PathConf {
            source: Some("publisher".into()),
            run_on_demand_restart: Some(true),
            record_delete_after: Some("0s".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"source":"publisher","runOnDemandRestart":true,"recordDeleteAfter":"0s"})
        );
    }

    #[test]
    fn runtime_path_parses_and_finds_video() {
        let p: Path = serde_json::from_str(r#"{"name":"camera1","confName":"camera1","source":{"type":"rtspSession","id":"x"},"ready":true,"readyTime":null,"available":true,"availableTime":"2026-11-24T10:00:00Z","online":true,"onlineTime":null,"tracks":["H264"],"tracks2":[{"codec":"H264","codecProps":{"width":640,"height":480,"profile":"Baseline","level":"3.0"}}],"inboundBytes":10,"outboundBytes":5,"inboundFramesInError":0,"bytesReceived":10,"bytesSent":5,"readers":[{"type":"rtspSession","id":"r"}]}"#).unwrap();
        assert_eq!(p.video(), Some(("H264", Some(640), Some(480))));
        assert_eq!(p.readers.len(), 1);
    }
}
