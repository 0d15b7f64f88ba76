//! camera-service: a camera control plane for MediaMTX on ARM edge boards.
//! `docs/design.md` explains the shape; `docs/api.md` and `docs/config.md` are the references.
//!
//! Public modules are the ones the black-box tests and benchmarks reach (starting the
//! service, minting credentials, config, clock); the rest is crate-private so the compiler
//! finds dead code.

pub mod api;
pub(crate) mod camera;
pub mod cli;
pub mod clock;
pub mod config;
pub mod controller;
pub mod error;
pub mod events;
pub(crate) mod external;
pub(crate) mod health;
pub(crate) mod ids;
pub(crate) mod mavlink;
pub mod media;
pub(crate) mod mediamtx;
pub(crate) mod metrics;
pub mod service;
pub(crate) mod shutdown;
pub(crate) mod state_file;
pub(crate) mod storage;
pub(crate) mod tasks;
