//! Media work: FFmpeg command building and supervision, streams and recordings, snapshots.

pub mod ffmpeg;
pub mod image;
pub mod recording;
pub mod service;
pub mod snapshot;
pub mod tap;
