//! Camera ids (`cameraN`) and their validation.

/// Returns N for `cameraN` (`^camera[0-9]+$`, no leading `+`/spaces, N fits in u32).
pub fn parse_camera_id(id: &str) -> Option<u32> {
    let digits = id.strip_prefix("camera")?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn camera_id(n: u32) -> String {
    format!("camera{n}")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ids() {
        assert_eq!(parse_camera_id("camera0"), Some(0));
        assert_eq!(parse_camera_id("camera100"), Some(100));
        for bad in [
            "camera",
            "cam0",
            "camera-1",
            "camera+1",
            " camera1",
            "camera1 ",
            "Camera1",
            "camera1a",
            "camera9999999999",
        ] {
            assert_eq!(parse_camera_id(bad), None, "{bad}");
        }
    }
}
