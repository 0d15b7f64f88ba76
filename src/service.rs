//! The `serve` lifecycle: logging, secret, listener, readiness (sd_notify), watchdog,
//! signals, and a bounded graceful shutdown.

use crate::api::auth::{ApiKeyStore, AuthFailureLimiter, JwtKey};
use crate::api::events::EventBus;
use crate::api::{server, AppState};
use crate::config::{Config, Secret};
use crate::controller::Controller;
use crate::events::Lifecycle;
use crate::health::Level;
use crate::shutdown::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn init_logging(config: &Config) {
    let level = config.logging.level.filter();
    let _ = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_module_level("async_io", log::LevelFilter::Warn)
        .with_module_level("polling", log::LevelFilter::Warn)
        .with_module_level("tungstenite", log::LevelFilter::Warn)
        .with_module_level("async_tungstenite", log::LevelFilter::Warn)
        .with_module_level("ureq", log::LevelFilter::Warn)
        .with_module_level("ureq_proto", log::LevelFilter::Warn)
        .env()
        .with_utc_timestamps()
        .init();
}

/// The JWT secret from config/env, or from `security.jwt_secret_file` (which must not be
/// readable by others).
pub fn load_jwt_secret(config: &Config) -> Result<Secret, String> {
    let sec = &config.security;
    if !sec.jwt_secret.is_empty() {
        return Ok(sec.jwt_secret.clone());
    }
    let Some(path) = &sec.jwt_secret_file else {
        return Err("security.jwt_secret: must be set (>= 32 bytes), through CAMERA_SERVICE_SECURITY_JWT_SECRET or security.jwt_secret_file".into());
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("security.jwt_secret_file: cannot read {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o007 != 0 {
        return Err(format!(
            "security.jwt_secret_file: {} must not be accessible by others (use mode 0600 or 0640)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("security.jwt_secret_file: cannot read {}: {e}", path.display()))?;
    let secret = text.trim().to_string();
    if secret.len() < 32 {
        return Err("security.jwt_secret_file: the secret must be at least 32 bytes long".into());
    }
    Ok(Secret::new(secret))
}

fn worker_threads(config: &Config) -> usize {
    match config.server.worker_threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4),
        n => n,
    }
}

/// Runs the service until SIGTERM/SIGINT.
pub fn serve(config: Config) -> Result<(), String> {
    let secret = load_jwt_secret(&config)?;
    // smol's global executor reads this once, before its first use.
    if std::env::var_os("SMOL_THREADS").is_none() {
        std::env::set_var("SMOL_THREADS", worker_threads(&config).to_string());
    }
    let config = Arc::new(config);
    smol::block_on(run(config, secret))
}

/// A started service: its address and the shared state, for the signal loop and for
/// in-process tests (which inject events through `controller`).
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub state: Arc<AppState>,
    serve_task: smol::Task<()>,
    /// Follows the API-key file (revocations apply to open sessions), off the executor.
    keys_task: smol::Task<()>,
}

impl Running {
    pub fn controller(&self) -> &Arc<Controller> {
        &self.state.controller
    }

    /// Publishes `system.shutdown`, closes every client with 1001 and waits for them, bounded
    /// by `server.shutdown_timeout`.
    pub async fn shutdown(self) {
        let state = self.state;
        state
            .controller
            .publish_lifecycle(Lifecycle::Shutdown, "service stopping");
        // Let writers flush the shutdown event before the close frames.
        smol::Timer::after(Duration::from_millis(50)).await;
        let limit = state.config.server.shutdown_timeout.get();
        // Clients first (the server stops accepting and closes them with 1001), then the
        // core's components in reverse start order.
        state.shutdown.trigger();
        self.serve_task.await;
        self.keys_task.await;
        state.controller.shutdown(limit).await;
        let deadline = Instant::now() + limit;
        while state.connected_clients() > 0 && Instant::now() < deadline {
            smol::Timer::after(Duration::from_millis(20)).await;
        }
        if state.connected_clients() > 0 {
            log::warn!(
                "{} client(s) still open after the shutdown timeout",
                state.connected_clients()
            );
        }
    }
}

/// Binds the port and starts serving; returns once clients can connect and the first camera
/// discovery pass is done.
pub async fn start(config: Arc<Config>, secret: Secret) -> Result<Running, String> {
    let shutdown = Shutdown::new();
    let controller = Controller::new(config.clone(), shutdown.clone());
    let bus = Arc::new(EventBus::new(config.server.event_queue_size));
    crate::api::event_wire::attach(
        controller.events(),
        bus.clone(),
        config.mediamtx.clone(),
        controller.hosts().clone(),
    );
    let state = Arc::new(AppState {
        config: config.clone(),
        jwt: JwtKey::new(secret.expose().as_bytes()),
        keys: ApiKeyStore::new(&config.security.api_keys_file),
        auth_failures: AuthFailureLimiter::new(config.security.auth_failures_per_minute),
        controller: controller.clone(),
        bus,
        connections: AtomicUsize::new(0),
        shutdown,
    });
    let listener = server::bind(&state)
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.server.host, config.server.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    controller.set_component(
        "websocket_server",
        Level::Healthy,
        &format!("listening on port {}", addr.port()),
        true,
        true,
    );
    let st = state.clone();
    blocking::unblock(move || st.keys.reload()).await;
    let st = state.clone();
    let keys_task = smol::spawn(async move {
        while !crate::controller::stop_or_sleep(&st.shutdown, crate::api::auth::RELOAD_EVERY).await {
            let s = st.clone();
            blocking::unblock(move || s.keys.reload()).await;
        }
    });
    let serve_task = smol::spawn(server::serve(state.clone(), listener));
    // Health answers meanwhile; readiness (and sd_notify READY in `run`) waits for this.
    controller.start().await;
    crate::mavlink::start(&controller, addr.port()).await?;
    Ok(Running {
        addr,
        state,
        serve_task,
        keys_task,
    })
}

async fn run(config: Arc<Config>, secret: Secret) -> Result<(), String> {
    let signals = async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let running = start(config.clone(), secret).await?;
    log::info!(
        "camera-service {} listening on {} (WebSocket path {})",
        env!("CARGO_PKG_VERSION"),
        running.addr,
        config.server.websocket_path
    );
    // Scripts and tests wait for this line (the port matters when port = 0).
    println!(
        "camera-service listening on ws://{}{}",
        running.addr, config.server.websocket_path
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let watchdog = start_watchdog(running.state.shutdown.clone());

    let signal = futures_util::StreamExt::next(&mut { signals }).await;
    log::info!("received {:?}: shutting down", signal.and_then(|s| s.ok()));
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    running.shutdown().await;
    drop(watchdog);
    log::info!("camera-service stopped");
    Ok(())
}

/// Feeds systemd's watchdog at half its period while the executor is responsive.
fn start_watchdog(shutdown: Shutdown) -> Option<smol::Task<()>> {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let period = Duration::from_micros(usec / 2);
    Some(smol::spawn(async move {
        while !shutdown.is_triggered() {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            smol::Timer::after(period).await;
        }
    }))
}
