//! MediaMTX v1.20.1's configuration rules and error bodies, table-driven: every request a
//! real MediaMTX refuses is refused by the double with the same status and text, and the
//! values it reports are rendered like MediaMTX renders them. Texts come from MediaMTX's
//! `internal/conf` and `internal/api` (code and tests) at tag v1.20.1.

mod common;
use common::*;
use serde_json::{json, Value};

/// (method, url path, body, expected status, expected error text or "" for ok)
type Case = (&'static str, &'static str, &'static str, u16, &'static str);

fn run(a: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for (i, (method, url, body, status, err)) in cases.iter().enumerate() {
        let body = if *body == "<none>" { None } else { Some(*body) };
        let r = http(method, &format!("{}{}", a, url), body);
        let want = if err.is_empty() {
            json!({"status": "ok"})
        } else {
            json!({"status": "error", "error": err})
        };
        let got: Value = serde_json::from_str(&r.body).unwrap_or(json!(r.body));
        if r.status != *status || got != want {
            failures.push(format!(
                "case {} {} {} {:?}: got {} {}, want {} {}",
                i, method, url, body, r.status, got, status, want
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn path_configuration_rules() {
    let (h, _dir) = start("rules-paths");
    let a = h.api_url();
    let add = "POST";
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // path names (conf.IsValidPathName)
        (add, "/v3/config/paths/add/a:b", "{}", 400, "invalid path name 'a:b': can contain only alphanumeric characters, underscore, dot, minus, slash"),
        (add, "/v3/config/paths/add/a~b", "{}", 400, "invalid path name 'a~b': can contain only alphanumeric characters, underscore, dot, minus, slash"),
        (add, "/v3/config/paths/add/cam%20one", "{}", 400, "invalid path name 'cam one': can contain only alphanumeric characters, underscore, dot, minus, slash"),
        (add, "/v3/config/paths/add/group/../cam", "{}", 400, "invalid path name 'group/../cam': can't contain dot path segments"),
        (add, "/v3/config/paths/add/./cam", "{}", 400, "invalid path name './cam': can't contain dot path segments"),
        (add, "/v3/config/paths/add/cam/.", "{}", 400, "invalid path name 'cam/.': can't contain dot path segments"),
        (add, "/v3/config/paths/add/cam/", "{}", 400, "invalid path name 'cam/': can't end with a slash"),
        (add, "/v3/config/paths/add/group/cam.1_x-y", "{}", 200, ""),
        // reserved names and regular expressions
        (add, "/v3/config/paths/add/all", "{}", 400, "all_others, all and '~^.*$' are aliases"),
        (add, "/v3/config/paths/add/~^.*$", "{}", 400, "all_others, all and '~^.*$' are aliases"),
        (add, "/v3/config/paths/add/~^(cam", "{}", 400, "invalid regular expression: ^(cam"),
        // Go's RE2 syntax, not the regex crate's
        (add, "/v3/config/paths/add/~^cam**$", "{}", 400, "invalid regular expression: ^cam**$"),
        (add, "/v3/config/paths/add/~^cam{1001}$", "{}", 400, "invalid regular expression: ^cam{1001}$"),
        (add, "/v3/config/paths/add/~(%3Fx)cam", "{}", 400, "invalid regular expression: (?x)cam"),
        (add, "/v3/config/paths/add/~^cam\\1$", "{}", 400, "invalid regular expression: ^cam\\1$"),
        (add, "/v3/config/paths/add/~^cam{,5}$", "{}", 200, ""),
        // Go's repeatIsValid: nested repeats expanding more than 1000 times
        (add, "/v3/config/paths/add/~^(cam{500}){3}$", "{}", 400, "invalid regular expression: ^(cam{500}){3}$"),
        (add, "/v3/config/paths/add/~^(cam{500}){2}$", "{}", 200, ""),
        // `--` in a class is a range from or to '-' in Go ('a' > '-': refused)
        (add, "/v3/config/paths/add/~^cam[a--]$", "{}", 400, "invalid regular expression: ^cam[a--]$"),
        (add, "/v3/config/paths/add/~^cam[!--]$", "{}", 200, ""),
        (add, "/v3/config/paths/add/~^\\Qcam.x\\E$", "{}", 200, ""),
        (add, "/v3/config/paths/add/~^cam", r#"{"source":"rtsp://h:554/x"}"#, 400, "a path with a regular expression (or path 'all_others') and a static source must have 'sourceOnDemand' set to true"),
        (add, "/v3/config/paths/add/~^cam", r#"{"runOnInit":"true"}"#, 400, "a path with a regular expression (or path 'all_others') does not support option 'runOnInit'; use another path"),
        (add, "/v3/config/paths/add/~^cam", r#"{"alwaysAvailable":true}"#, 400, "'alwaysAvailable' cannot be used in a path with a regular expression (or path 'all_others')"),
        (add, "/v3/config/paths/add/~^cam", r#"{"source":"rtsp://h:554/x","sourceOnDemand":true}"#, 200, ""),
        // recording
        (add, "/v3/config/paths/add/r1", r#"{"recordSegmentDuration":"2h","recordDeleteAfter":"1h"}"#, 400, "'recordDeleteAfter' cannot be lower than 'recordSegmentDuration'"),
        (add, "/v3/config/paths/add/r1", r#"{"recordSegmentDuration":"25h","recordDeleteAfter":"0s"}"#, 400, "maximum segment duration is 1 day"),
        (add, "/v3/config/paths/add/r1", r#"{"recordSegmentDuration":"2h","recordDeleteAfter":"0s"}"#, 200, ""),
        (add, "/v3/config/paths/add/r2", r#"{"recordPath":"/rec/%Y%m%d%H%M%S"}"#, 400, "'recordPath' must contain %path"),
        (add, "/v3/config/paths/add/r2", r#"{"recordPath":"/rec/%path/%Y"}"#, 400, "'recordPath' must contain either %s or %Y %m %d %H %M %S"),
        (add, "/v3/config/paths/add/r2", r#"{"recordFormat":"avi"}"#, 400, "invalid record format 'avi'"),
        // sources
        (add, "/v3/config/paths/add/s1", r#"{"sourceRedirect":"/other"}"#, 400, "'sourceRedirect' is useless when source is not 'redirect'"),
        (add, "/v3/config/paths/add/s1", r#"{"source":"redirect"}"#, 400, "source redirect must be filled"),
        (add, "/v3/config/paths/add/s1", r#"{"source":"redirect","sourceRedirect":"/a/../b"}"#, 400, "'/a/../b': can't contain dot path segments"),
        (add, "/v3/config/paths/add/s1", r#"{"source":"rtsp://user@h:554/x"}"#, 400, "username and password must be both provided"),
        (add, "/v3/config/paths/add/s1", r#"{"source":"rtsp://:pass@h:554/x"}"#, 400, "username and password must be both provided"),
        (add, "/v3/config/paths/add/s1", r#"{"source":"rtsp:///x"}"#, 400, "'rtsp:///x' is not a valid URL"),
        (add, "/v3/config/paths/add/s1", r#"{"source":"udp://238.0.0.1"}"#, 400, "'udp://238.0.0.1' is missing the port"),
        (add, "/v3/config/paths/add/s1", r#"{"source":"camera"}"#, 400, "invalid source: 'camera'"),
        (add, "/v3/config/paths/add/s1", r#"{"sourceOnDemand":true}"#, 400, "'sourceOnDemand' is useless when source is 'publisher'"),
        (add, "/v3/config/paths/add/s1", r#"{"source":"rtsp://h:554/x","runOnDemand":"ffmpeg"}"#, 400, "'runOnDemand' and 'runOnUnDemand' can be used only when source is 'publisher'"),
        (add, "/v3/config/paths/add/s1", r#"{"srtPublishPassphrase":"short"}"#, 400, "invalid 'srtPublishPassphrase': must be between 10 and 79 characters"),
        (add, "/v3/config/paths/add/s1", r#"{"source":"rtsp://h:554/x","srtPublishPassphrase":"0123456789"}"#, 400, "'srtPublishPassphase' can only be used when source is 'publisher'"),
        (add, "/v3/config/paths/add/s1", r#"{"srtReadPassphrase":"short"}"#, 400, "invalid 'readRTPassphrase': must be between 10 and 79 characters"),
        (add, "/v3/config/paths/add/s1", r#"{"source":"rtsp://u:p@h:554/x"}"#, 200, ""),
        // forward
        (add, "/v3/config/paths/add/f1", r#"{"forward":[{"dest":"http://h/x"}]}"#, 400, "invalid 'forward': entry 0: unsupported scheme 'http', supported ones are rtmp, rtmps, rtsp, rtsps, srt, whip and whips"),
        (add, "/v3/config/paths/add/f1", r#"{"forward":[{"dest":"rtsp://h/x"},{"dest":""}]}"#, 400, "invalid 'forward': entry 1: destination is empty"),
        (add, "/v3/config/paths/add/f1", r#"{"forward":[{"dest":"rtsp://h/x","x":1}]}"#, 400, "json: unknown field \"forward[0].x\""),
        (add, "/v3/config/paths/add/f1", r#"{"forward":[{"dest":"rtsp://h/$MTX_PATH"}]}"#, 200, ""),
        // alwaysAvailable
        (add, "/v3/config/paths/add/aa", r#"{"alwaysAvailable":true}"#, 400, "'alwaysAvailableTracks' must contain at least one track"),
        (add, "/v3/config/paths/add/aa", r#"{"alwaysAvailableTracks":[{"codec":"H264","sampleRate":8000}]}"#, 400, "sampleRate must not be specified for codec 'H264'"),
        (add, "/v3/config/paths/add/aa", r#"{"alwaysAvailableTracks":[{"codec":"MPEG4Audio","sampleRate":8000,"channelCount":1}]}"#, 400, "sampleRate must be greater than or equal to 22050 for codec 'MPEG4Audio'"),
        (add, "/v3/config/paths/add/aa", r#"{"alwaysAvailableTracks":[{"codec":"MJPEG"}]}"#, 400, "unsupported codec 'MJPEG'"),
        (add, "/v3/config/paths/add/aa", r#"{"alwaysAvailableTracks":[{"codec":"H264","x":1}]}"#, 400, "json: unknown field \"x\""),
        (add, "/v3/config/paths/add/aa", r#"{"alwaysAvailable":true,"alwaysAvailableTracks":[{"codec":"H264"}],"runOnDemand":"x"}"#, 400, "'runOnDemand' and 'runOnUnDemand' cannot be used with 'alwaysAvailable'"),
        (add, "/v3/config/paths/add/aa", r#"{"alwaysAvailable":true,"alwaysAvailableTracks":[{"codec":"H264"}]}"#, 200, ""),
        // bodies: jsonwrapper / encoding/json texts
        (add, "/v3/config/paths/add/b1", "", 400, "unexpected end of JSON input"),
        (add, "/v3/config/paths/add/b1", "<none>", 400, "unexpected end of JSON input"),
        (add, "/v3/config/paths/add/b1", r#"{"record":"#, 400, "unexpected end of JSON input"),
        (add, "/v3/config/paths/add/b1", "[]", 400, "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"),
        (add, "/v3/config/paths/add/b1", r#"{"test":"asd"}"#, 400, "json: unknown field \"test\""),
        (add, "/v3/config/paths/add/b1", r#"{"record":"yes"}"#, 400, "json: cannot unmarshal string into Go value of type bool"),
        (add, "/v3/config/paths/add/b1", r#"{"maxReaders":1.5}"#, 400, "json: cannot unmarshal number 1.5 into Go value of type int"),
        (add, "/v3/config/paths/add/b1", r#"{"rpiCameraWidth":-1}"#, 400, "json: cannot unmarshal number -1 into Go value of type uint"),
        (add, "/v3/config/paths/add/b1", r#"{"recordDeleteAfter":5}"#, 400, "json: cannot unmarshal number into Go value of type string"),
        (add, "/v3/config/paths/add/b1", r#"{"recordDeleteAfter":"soon"}"#, 400, "time: invalid duration \"soon\""),
        (add, "/v3/config/paths/add/b1", r#"{"recordFormat":1}"#, 400, "json: cannot unmarshal number into Go value of type conf.alias"),
        (add, "/v3/config/paths/add/b1", r#"{"rtspTransport":"quic"}"#, 400, "invalid transport 'quic'"),
        (add, "/v3/config/paths/add/b1", r#"{"forward":"rtsp://h/x"}"#, 400, "json: cannot unmarshal string into Go value of type []json.RawMessage"),
        (add, "/v3/config/paths/add/b1", "null", 200, ""),
        // source rpiCamera (conf.Path.validate)
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraWidth":0}"#, 400, "invalid 'rpiCameraWidth' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraCodec":"mjpeg","rpiCameraWidth":1921}"#, 400, "'rpiCameraWidth' must be a multiple of 8 and less than 2048 when using MJPEG"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraCodec":"mjpeg","rpiCameraWidth":1920,"rpiCameraHeight":2048}"#, 400, "'rpiCameraHeight' must be a multiple of 8 and less than 2048 when using MJPEG"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraExposure":"huge"}"#, 400, "invalid 'rpiCameraExposure' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraAWB":"moon"}"#, 400, "invalid 'rpiCameraAWB' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraAWBGains":[1]}"#, 400, "invalid 'rpiCameraAWBGains' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraDenoise":"max"}"#, 400, "invalid 'rpiCameraDenoise' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraMetering":"x"}"#, 400, "invalid 'rpiCameraMetering' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraAfMode":"x"}"#, 400, "invalid 'rpiCameraAfMode' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraAfRange":"x"}"#, 400, "invalid 'rpiCameraAfRange' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraAfSpeed":"x"}"#, 400, "invalid 'rpiCameraAfSpeed' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraProfile":"extreme"}"#, 400, "invalid 'rpiCameraHardwareH264Profile' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraSoftwareH264Level":"5.0"}"#, 400, "invalid 'rpiCameraSoftwareH264Level' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraH264Profile":"x"}"#, 400, "invalid 'rpiCameraH264Profile' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraH264Level":"3.0"}"#, 400, "invalid 'rpiCameraH264Level' value"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraCodec":"vp9"}"#, 400, "supported codecs for a RPI Camera stream are auto, hardwareH264, softwareH264, mjpeg"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera","rpiCameraSecondary":true,"rpiCameraWidth":640,"rpiCameraHeight":480}"#, 400, "cannot find a primary RPI Camera stream to associate with the secondary stream"),
        (add, "/v3/config/paths/add/rpi1", r#"{"source":"rpiCamera"}"#, 200, ""),
        (add, "/v3/config/paths/add/rpi2", r#"{"source":"rpiCamera"}"#, 400, "'rpiCamera' with same camera ID 0 is used as source in two paths, 'rpi1' and 'rpi2'"),
        (add, "/v3/config/paths/add/rpi2", r#"{"source":"rpiCamera","rpiCameraCamID":1}"#, 200, ""),
        (add, "/v3/config/paths/add/rpi3", r#"{"source":"rpiCamera","rpiCameraSecondary":true,"rpiCameraWidth":640,"rpiCameraHeight":480}"#, 200, ""),
        (add, "/v3/config/paths/add/rpi4", r#"{"source":"rpiCamera","rpiCameraSecondary":true,"rpiCameraWidth":640,"rpiCameraHeight":480}"#, 400, "a primary RPI Camera stream is associated with multiple secondary streams"),
        (add, "/v3/config/paths/add/rpi4", r#"{"source":"rpiCamera","rpiCameraSecondary":true,"rpiCameraCamID":1,"rpiCameraWidth":642,"rpiCameraHeight":480}"#, 400, "'rpiCameraWidth' must be a multiple of 8 and less than 2048 when using MJPEG"),
        // existing names, patch / replace / delete
        (add, "/v3/config/paths/add/b1", "{}", 400, "path already exists"),
        ("PATCH", "/v3/config/paths/patch/nope", "{}", 404, "path not found"),
        ("PATCH", "/v3/config/paths/patch/b1", r#"{"source":"redirect"}"#, 400, "source redirect must be filled"),
        ("PATCH", "/v3/config/paths/patch/b1", r#"{"forward":[{"dest":"rtsp://h/x","nope":true}]}"#, 400, "json: unknown field \"forward[0].nope\""),
        ("POST", "/v3/config/paths/replace/a:b", "{}", 400, "invalid path name 'a:b': can contain only alphanumeric characters, underscore, dot, minus, slash"),
        ("DELETE", "/v3/config/paths/delete/nope", "<none>", 404, "path not found"),
        // pathdefaults must keep every path valid
        ("PATCH", "/v3/config/pathdefaults/patch", r#"{"recordSegmentDuration":"2d"}"#, 400, "maximum segment duration is 1 day"),
        ("PATCH", "/v3/config/pathdefaults/patch", r#"{"recordFormat":"avi"}"#, 400, "invalid record format 'avi'"),
    ];
    run(&a, cases);
}

#[test]
fn global_configuration_rules() {
    let (h, _dir) = start("rules-global");
    let a = h.api_url();
    let p = "PATCH";
    let g = "/v3/config/global/patch";
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (p, g, r#"{"logLevel":"loud"}"#, 400, "invalid log level: 'loud'"),
        (p, g, r#"{"logLevel":1}"#, 400, "json: cannot unmarshal number into Go value of type string"),
        (p, g, r#"{"test":"asd"}"#, 400, "json: unknown field \"test\""),
        (p, g, "", 400, "unexpected end of JSON input"),
        // encoding/json's scanner texts (json.Unmarshal checks the syntax first)
        (p, g, r#"{"logLevel":"info","x"}"#, 400, "invalid character '}' after object key"),
        (p, g, r#"{"logLevel" "info"}"#, 400, "invalid character '\"' after object key"),
        (p, g, r#"{"logLevel":"info" "rtsp":true}"#, 400, "invalid character '\"' after object key:value pair"),
        (p, g, r#"{'logLevel':1}"#, 400, r#"invalid character '\'' looking for beginning of object key string"#),
        (p, g, r#"{"readTimeout":10s}"#, 400, "invalid character 's' after object key:value pair"),
        (p, g, r#"{"rtsp":tru}"#, 400, "invalid character '}' in literal true (expecting 'e')"),
        (p, g, r#"{"rtspTransports":["tcp",]}"#, 400, "invalid character ']' looking for beginning of value"),
        (p, g, r#"{"rtsp":true}x"#, 400, "invalid character 'x' after top-level value"),
        (p, g, r#"{"rtsp":true"#, 400, "unexpected end of JSON input"),
        (p, g, r#"{"readTimeout":"0s"}"#, 400, "'readTimeout' must be greater than zero"),
        (p, g, r#"{"writeQueueSize":100}"#, 400, "'writeQueueSize' must be a power of two"),
        (p, g, r#"{"rtspTransports":["tcp","quic"]}"#, 400, "invalid transport: quic"),
        (p, g, r#"{"authMethod":"ldap"}"#, 400, "invalid authMethod: 'ldap'"),
        (p, g, r#"{"authMethod":"http"}"#, 400, "'authHTTPAddress' is empty"),
        (p, g, r#"{"authInternalUsers":[{"user":"any","pass":"secret","ips":[],"permissions":[{"action":"read"}]}]}"#, 400, "using a password with 'any' user is not supported"),
        (p, g, r#"{"authInternalUsers":[{"user":"","ips":[],"permissions":[]}]}"#, 400, "empty usernames are not supported"),
        (p, g, r#"{"authInternalUsers":[{"user":"u","pass":"p","ips":[],"permissions":[{"action":"fly"}]}]}"#, 400, "invalid auth action: 'fly'"),
        (p, g, r#"{"authInternalUsers":[{"user":"u","pass":"p","nope":1}]}"#, 400, "json: unknown field \"authInternalUsers[0].nope\""),
        (p, g, r#"{"authInternalUsers":[{"user":"u","pass":"p","ips":["nope"],"permissions":[]}]}"#, 400, "unable to parse IP/CIDR 'nope'"),
        (p, g, r#"{"authInternalUsers":[{"user":"u s","pass":"p","ips":[],"permissions":[]}]}"#, 400, "credential contains unsupported characters. Supported are: A-Z,0-9,!,$,(,),*,+,.,;,<,=,>,[,],^,_,-,\",\",@,#,&"),
        // argon2 hashes decoded like matthewhartstonge/argon2's Decode
        (p, g, r#"{"authInternalUsers":[{"user":"u","pass":"argon2:$argon2x$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA","ips":[],"permissions":[]}]}"#, 400, "invalid argon2 hash: there is no such version of argon2"),
        (p, g, r#"{"authInternalUsers":[{"user":"u","pass":"argon2:$argon2id$v=19$m=8,t=0,p=1$c2FsdA$aGFzaA","ips":[],"permissions":[]}]}"#, 400, "invalid argon2 hash: decoding failed"),
        (p, g, r#"{"api":true,"apiAddress":""}"#, 400, "'apiAddress' must be set when API is enabled"),
        (p, g, r#"{"rtmp":false,"readTimeout":"7s","protocols":["tcp"],"readBufferCount":4096}"#, 200, ""),
        (p, g, r#"{"logLevel":null}"#, 200, ""),
        // playback needs %f in every recordPath (conf.Path.validate)
        (p, "/v3/config/pathdefaults/patch", r#"{"recordPath":"./rec/%path/%s"}"#, 200, ""),
        (p, g, r#"{"playback":true}"#, 400, "'recordPath' must contain %f"),
        (p, "/v3/config/pathdefaults/patch", r#"{"recordPath":"./rec/%path/%s-%f"}"#, 200, ""),
        (p, g, r#"{"playback":true}"#, 200, ""),
        (p, "/v3/config/pathdefaults/patch", r#"{"recordPath":"./rec/%path/%s"}"#, 400, "'recordPath' must contain %f"),
        (p, g, r#"{"playback":false}"#, 200, ""),
    ];
    run(&a, cases);

    // deprecated fields stay visible and are mapped (api_config_global_test.go)
    let c = http("GET", &format!("{}/v3/config/global/get", a), None).json();
    assert_eq!(c["rtmp"], false);
    assert_eq!(c["readTimeout"], "7s");
    assert_eq!(c["protocols"], json!(["tcp"]));
    assert_eq!(c["rtspTransports"], json!(["tcp"]));
    assert_eq!(c["readBufferCount"], 4096);
    assert_eq!(c["writeQueueSize"], 4096);
    assert_eq!(c["logLevel"], "info", "null leaves a field as it is");
    // passwords redacted
    let r = http(
        p,
        &format!("{}{}", a, g),
        Some(
            r#"{"authInternalUsers":[{"user":"myuser","pass":"mypass","ips":[],"permissions":[{"action":"api"}]},{"user":"any","ips":["127.0.0.1"],"permissions":[{"action":"read"},{"action":"api"}]}]}"#,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let c = http("GET", &format!("{}/v3/config/global/get", a), None).json();
    assert_eq!(c["authInternalUsers"][0]["pass"], "<redacted>");
    assert_eq!(
        c["authInternalUsers"][0]["permissions"],
        json!([{"action":"api","path":""}])
    );
    assert_eq!(c["authInternalUsers"][1]["pass"], "");
    // conf.IPNetwork renders like net.IPNet
    assert_eq!(c["authInternalUsers"][1]["ips"], json!(["127.0.0.1/32"]));
}

#[test]
fn path_values_like_mediamtx() {
    let (h, _dir) = start("rules-values");
    let a = h.api_url();
    let get = |n: &str| http("GET", &format!("{}/v3/config/paths/get/{}", a, n), None).json();
    let req = |m: &str, u: &str, b: &str| {
        let r = http(m, &format!("{}{}", a, u), Some(b));
        assert_eq!(r.status, 200, "{} {} {}: {}", m, u, b, r.body);
    };
    // a deprecated parameter is kept and mapped (api_config_paths_test.go)
    req(
        "POST",
        "/v3/config/paths/add/my/path",
        r#"{"source":"rtsp://127.0.0.1:9999/mypath","sourceOnDemand":true,"disablePublisherOverride":true,"rpiCameraVFlip":true}"#,
    );
    let c = get("my/path");
    assert_eq!(c["disablePublisherOverride"], true);
    assert_eq!(c["rpiCameraVFlip"], true);
    req(
        "PATCH",
        "/v3/config/paths/patch/my/path",
        r#"{"source":"rtsp://127.0.0.1:9998/mypath","sourceOnDemand":true}"#,
    );
    let c = get("my/path");
    assert_eq!(c["source"], "rtsp://127.0.0.1:9998/mypath");
    assert_eq!(c["disablePublisherOverride"], true);
    req(
        "POST",
        "/v3/config/paths/replace/my/path",
        r#"{"source":"rtsp://127.0.0.1:9998/mypath","sourceOnDemand":true}"#,
    );
    let c = get("my/path");
    assert_eq!(c.get("disablePublisherOverride"), None);
    assert_eq!(c["rpiCameraVFlip"], false);

    // on a publisher path disablePublisherOverride sets overridePublisher
    req(
        "POST",
        "/v3/config/paths/add/pub",
        r#"{"disablePublisherOverride":true}"#,
    );
    assert_eq!(get("pub")["overridePublisher"], false);
    req(
        "POST",
        "/v3/config/paths/add/tr",
        r#"{"source":"rtsp://h:554/x","sourceProtocol":"tcp"}"#,
    );
    assert_eq!(get("tr")["rtspTransport"], "tcp");

    // null in a PATCH keeps the value
    req(
        "POST",
        "/v3/config/paths/add/n1",
        r#"{"record":true,"recordDeleteAfter":"7d"}"#,
    );
    req(
        "PATCH",
        "/v3/config/paths/patch/n1",
        r#"{"record":null,"recordDeleteAfter":null}"#,
    );
    let c = get("n1");
    assert_eq!(c["record"], true);
    // durations: whole days as <N>d
    assert_eq!(c["recordDeleteAfter"], "7d");
    req(
        "PATCH",
        "/v3/config/paths/patch/n1",
        r#"{"recordDeleteAfter":"36h","recordSegmentDuration":"90m"}"#,
    );
    let c = get("n1");
    assert_eq!(c["recordDeleteAfter"], "1d12h0m0s");
    assert_eq!(c["recordSegmentDuration"], "1h30m0s");
    let d = http("GET", &format!("{}/v3/config/pathdefaults/get", a), None).json();
    assert_eq!(d["recordDeleteAfter"], "1d");

    // deprecated passwords are redacted
    req(
        "POST",
        "/v3/config/paths/add/cred",
        r#"{"readUser":"myuser","readPass":"mypass"}"#,
    );
    let c = get("cred");
    assert_eq!(c["readUser"], "myuser");
    assert_eq!(c["readPass"], "<redacted>");
}

#[test]
fn pagination_errors() {
    let (h, _dir) = start("rules-pages");
    let a = h.api_url();
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("GET", "/v3/config/paths/list?itemsPerPage=abc", "<none>", 400, "strconv.ParseUint: parsing \"abc\": invalid syntax"),
        ("GET", "/v3/config/paths/list?itemsPerPage=0", "<none>", 400, "invalid items per page"),
        ("GET", "/v3/config/paths/list?itemsPerPage=2147483648", "<none>", 400, "strconv.ParseUint: parsing \"2147483648\": value out of range"),
        ("GET", "/v3/paths/list?page=-1", "<none>", 400, "strconv.ParseUint: parsing \"-1\": invalid syntax"),
        ("GET", "/v3/recordings/list?page=99999999999", "<none>", 400, "strconv.ParseUint: parsing \"99999999999\": value out of range"),
    ];
    run(&a, cases);
    let l = http(
        "GET",
        &format!("{}/v3/config/paths/list?itemsPerPage=2147483647&page=5", a),
        None,
    );
    assert_eq!(l.status, 200);
}

#[test]
fn recordings_rules() {
    let (h, dir) = start("rules-rec");
    let a = h.api_url();
    let rec = dir.join("rec");
    let r = http(
        "PATCH",
        &format!("{}/v3/config/pathdefaults/patch", a),
        Some(&format!(
            r#"{{"recordPath":"{}/%path/%Y-%m-%d_%H-%M-%S-%f"}}"#,
            rec.display()
        )),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let seg_dir = rec.join("group/cam1");
    std::fs::create_dir_all(&seg_dir).unwrap();
    let file = |n: &str| seg_dir.join(n);
    let touch = |n: &str| std::fs::write(file(n), b"").unwrap();
    // the local offset of that date, as the double (and MediaMTX) sees it
    let local = mediamtx_double::util::local_tm(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_226_056_920));
    let off = |secs: i64| {
        if secs == 0 {
            "Z".to_string()
        } else {
            format!(
                "{}{:02}:{:02}",
                if secs < 0 { '-' } else { '+' },
                secs.abs() / 3600,
                secs.abs() % 3600 / 60
            )
        }
    };
    let other = if local.gmtoff == 7200 { 3600 } else { 7200 };
    let del = |start: &str| {
        let q = format!(
            "{}/v3/recordings/deletesegment?path=group/cam1&start={}",
            a,
            start.replace('+', "%2B")
        );
        http("DELETE", &q, None)
    };

    // names with dot segments are refused
    touch("2008-11-07_11-22-00-900000.mp4");
    let r = http("GET", &format!("{}/v3/recordings/get/group/../cam1", a), None);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        "invalid path name: can't contain dot path segments (group/../cam1)"
    );
    let r = http(
        "DELETE",
        &format!(
            "{}/v3/recordings/deletesegment?path=group/../cam1&start=2008-11-07T11:22:00.9{}",
            a,
            off(local.gmtoff).replace('+', "%2B")
        ),
        None,
    );
    assert_eq!(r.status, 400);
    assert!(file("2008-11-07_11-22-00-900000.mp4").exists());

    // listed in local time with microseconds
    let l = http("GET", &format!("{}/v3/recordings/get/group/cam1", a), None).json();
    assert_eq!(
        l["segments"],
        json!([{"start": format!("2008-11-07T11:22:00.9{}", off(local.gmtoff))}])
    );

    // deletesegment encodes the clock time written in `start` (recordstore Path.Encode)
    // the same instant written with another offset: another clock time, not found
    let h_other = 11 + (other - local.gmtoff) / 3600;
    let r = del(&format!("2008-11-07T{:02}:22:00.9{}", h_other, off(other)));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .ends_with("no such file or directory"));
    assert!(file("2008-11-07_11-22-00-900000.mp4").exists());
    // the same clock time with another offset: that file
    let r = del(&format!("2008-11-07T11:22:00.9{}", off(other)));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!file("2008-11-07_11-22-00-900000.mp4").exists());
    // six-digit fractions; more digits are truncated to microseconds
    touch("2008-11-07_11-22-00-123456.mp4");
    let r = del(&format!("2008-11-07T11:22:00.123456{}", off(local.gmtoff)));
    assert_eq!(r.status, 200, "{}", r.body);
    touch("2008-11-07_11-22-00-123456.mp4");
    let r = del(&format!("2008-11-07T11:22:00.123456789{}", off(local.gmtoff)));
    assert_eq!(r.status, 200, "{}", r.body);
    touch("2008-11-07_11-22-00-123456.mp4");
    let r = del(&format!("2008-11-07T11:22:00.12345{}", off(local.gmtoff)));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = del("yesterday");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        "invalid 'start' parameter: parsing time \"yesterday\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"yesterday\" as \"2006\""
    );

    // segment names with a zone offset are listed with their offset
    let r = http(
        "POST",
        &format!("{}/v3/config/paths/add/zoned", a),
        Some(&format!(
            r#"{{"recordPath":"{}/%path/%Y-%m-%d_%H-%M-%S-%f%z"}}"#,
            rec.display()
        )),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    std::fs::create_dir_all(rec.join("zoned")).unwrap();
    std::fs::write(rec.join("zoned/2008-11-07_11-22-00-500000+0230.mp4"), b"").unwrap();
    std::fs::write(rec.join("zoned/2009-11-07_11-22-00-000000Z.mp4"), b"").unwrap();
    let l = http("GET", &format!("{}/v3/recordings/get/zoned", a), None).json();
    assert_eq!(
        l["segments"],
        json!([{"start": "2008-11-07T11:22:00.5+02:30"}, {"start": "2009-11-07T11:22:00Z"}])
    );
    // with %z, the offset is part of the name
    let r = http(
        "DELETE",
        &format!(
            "{}/v3/recordings/deletesegment?path=zoned&start=2008-11-07T11:22:00.5%2B01:00",
            a
        ),
        None,
    );
    assert_eq!(r.status, 400);
    let r = http(
        "DELETE",
        &format!(
            "{}/v3/recordings/deletesegment?path=zoned&start=2008-11-07T11:22:00.5%2B02:30",
            a
        ),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn refusals_are_recorded_and_can_be_injected() {
    let (h, _dir) = start("rules-refused");
    let a = h.api_url();
    let r = http("POST", &format!("{}/v3/config/paths/add/a:b", a), Some("{}"));
    assert_eq!(r.status, 400);
    let r = http("GET", &format!("{}/v3/config/paths/get/nope", a), None);
    assert_eq!(r.status, 404);
    let refused = h.refused();
    assert_eq!(refused.len(), 1, "{:?}", refused);
    assert_eq!(refused[0]["method"], "POST");
    assert_eq!(refused[0]["path"], "/v3/config/paths/add/a:b");
    assert_eq!(
        refused[0]["error"],
        "invalid path name 'a:b': can contain only alphanumeric characters, underscore, dot, minus, slash"
    );
    let st = http("GET", &format!("{}/control/status", h.control_url()), None).json();
    assert_eq!(st["refused"].as_array().unwrap().len(), 1);

    // an injected refusal of the next change (not counted as a rule refusal)
    let r = http(
        "GET",
        &format!("{}/control/fail400?error=nope%20nope&count=1", h.control_url()),
        None,
    );
    assert_eq!(r.status, 200);
    let r = http("POST", &format!("{}/v3/config/paths/add/ok1", a), Some("{}"));
    assert_eq!((r.status, r.json()["error"].clone()), (400, json!("nope nope")));
    let r = http("POST", &format!("{}/v3/config/paths/add/ok1", a), Some("{}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.refused().len(), 1);
}

#[test]
fn record_delete_after_removes_old_segments() {
    let (h, dir) = start("rules-cleaner");
    let rec = dir.join("rec");
    let body = json!({
        "recordPath": format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f", rec.display()),
        "recordSegmentDuration": "1s",
        "recordDeleteAfter": "2s",
    });
    add_path(&h, "old", &body);
    let keep = json!({
        "recordPath": format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f", rec.display()),
        "recordDeleteAfter": "0s",
    });
    add_path(&h, "kept", &keep);
    std::fs::create_dir_all(rec.join("old/empty")).unwrap();
    std::fs::create_dir_all(rec.join("kept")).unwrap();
    let old = rec.join("old/2008-11-07_11-22-00-000000.mp4");
    let future = rec.join("old/2100-01-01_00-00-00-000000.mp4");
    let kept = rec.join("kept/2008-11-07_11-22-00-000000.mp4");
    for f in [&old, &future, &kept] {
        std::fs::write(f, b"").unwrap();
    }
    // runs every recordDeleteAfter / 2
    wait_until(std::time::Duration::from_secs(10), "old segment removed", || {
        !old.exists()
    });
    wait_until(std::time::Duration::from_secs(5), "empty directory removed", || {
        !rec.join("old/empty").exists()
    });
    assert!(future.exists());
    assert!(kept.exists(), "recordDeleteAfter 0 keeps everything");
}
