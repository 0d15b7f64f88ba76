//! Fuzzes the JSON-RPC envelope: frame parsing (with a batch bound), request validation and
//! the params helper.
//! Properties: no panic; every rejection is -32700 or -32600; a valid request's params
//! helper only ever fails with -32602 naming a param.
#![no_main]

use camera_service::api::jsonrpc::{parse_frame_bounded, parse_request, Frame, Params};
use libfuzzer_sys::fuzz_target;

fn check_request(v: serde_json::Value) {
    match parse_request(v) {
        Err((id, e)) => {
            assert_eq!(e.code, -32600);
            assert!(id.is_null() || id.is_string() || id.is_number());
        }
        Ok(req) => {
            assert!(!req.method.is_empty());
            if let Ok(map) = req.params {
                let mut p = Params::new(map);
                for r in [p.device().err(), p.opt_int("limit", 1, 1000).err(), p.opt_str_list("topics").err(), p.opt_bool("enabled").err()]
                    .into_iter()
                    .flatten()
                {
                    assert_eq!(r.code, -32602);
                    assert!(r.extra.contains_key("param"));
                }
                if let Err(e) = p.finish() {
                    assert_eq!(e.code, -32602);
                }
            }
        }
    }
}

const MAX_BATCH: usize = 4;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // A small batch bound, so the fuzzer reaches the batch_too_large path.
    match parse_frame_bounded(text, MAX_BATCH) {
        Err(e) => assert!(e.code == -32700 || e.code == -32600),
        Ok(Frame::Single(v)) => check_request(v),
        Ok(Frame::Batch(items)) => {
            assert!(!items.is_empty() && items.len() <= MAX_BATCH);
            items.into_iter().for_each(check_request);
        }
    }
});
