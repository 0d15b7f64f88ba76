//! Media work done by child processes: FFmpeg command building and supervision.

pub mod ffmpeg;
pub mod image;
pub mod recording;
pub mod service;
