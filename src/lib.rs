//! camera-service: a camera control plane for MediaMTX on ARM edge boards.
//! `docs/design.md` explains the shape; `docs/api.md` and `docs/config.md` are the references.

pub mod api;
pub mod camera;
pub mod cli;
pub mod clock;
pub mod config;
pub mod controller;
mod controller_external;
mod controller_media;
mod controller_snapshot;
mod controller_status;
pub mod discovery;
pub mod error;
pub mod external;
pub mod health;
pub mod ids;
pub mod media;
pub mod mediamtx;
pub mod metrics;
pub mod service;
pub mod shutdown;
pub mod state_file;
pub mod storage;
