//! One WebSocket client: a reader that runs requests concurrently (bounded per socket) and a
//! writer that drains responses, queued events and pings. The send half is shared behind a
//! lock: the reader writes a reply it has at once, and event publishers write a notification
//! themselves (`SocketOutlet`), whenever the send half is free.
//!
//! Close handshake (RFC 6455 §5.5.1, §7): a client's Close frame is echoed (tungstenite queues
//! the echo; the reader keeps reading, which flushes it); protocol violations are answered
//! with a Close frame, 1002 (or 1007 for invalid UTF-8), before the TCP connection is dropped.

use super::auth::TokenBucket;
use super::events::{Direct, Outlet, Subscriber};
use super::{dispatch, AppState, AuthMethod, Session};
use async_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::Utf8Bytes;
use async_tungstenite::WebSocketStream;
use futures_util::{Sink as _, SinkExt, StreamExt};
use smol::net::TcpStream;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Initial read buffer of a connection: idle clients send pongs and small requests, and
/// tungstenite grows the buffer for a larger frame (up to `max_message_bytes`). The default
/// (128 KiB, zero-filled on the first read) made every idle client cost ~150 KiB.
pub const READ_BUFFER: usize = 4 * 1024;
/// Bytes of frames gathered before a write; kept small, as the buffer's capacity stays with
/// the connection.
const WRITE_BUFFER: usize = 8 * 1024;
/// How long the close handshake may take before the TCP connection is dropped anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

enum Out {
    Text(String),
    Close(u16, &'static str),
    /// A publisher left frames in the send buffer (the socket was full): flush them.
    Flush,
}

enum Inbound {
    Msg(Option<Result<Message, WsError>>),
    Idle,
    Shutdown,
}

/// How the read loop ended.
enum End {
    /// We close: send this code, then wait for the client's Close.
    Send(u16, &'static str),
    /// The client sent Close: keep reading so tungstenite flushes its echo.
    ClientClosed,
    /// The TCP connection is gone (or unusable): nothing to send.
    Gone,
}

pub fn ws_config(sc: &crate::config::ServerConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        // The writer feeds what is queued and flushes once (see `writer_loop`); a frame that
        // takes the buffer past this is written at once.
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(sc.max_message_bytes))
        .max_frame_size(Some(sc.max_message_bytes))
}

/// Runs the session of an upgraded connection, counted in `state.connections` by the caller;
/// `run` gives the count back once the client is being closed.
pub async fn run(state: Arc<AppState>, stream: TcpStream, peer: SocketAddr, host: String, leftover: Vec<u8>) {
    let sc = &state.config.server;
    let ws = WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(ws_config(sc))).await;
    let (sink, mut source) = ws.split();
    let bus = state.bus.clone();
    let subscriber = bus.register();
    let session = Arc::new(Session {
        peer,
        host,
        identity: Mutex::new(None),
        bucket: Mutex::new(TokenBucket::new(
            state.config.security.rate_limit_per_second,
            state.config.security.rate_limit_burst,
        )),
        subscriber: subscriber.clone(),
    });
    log::debug!("WebSocket client {peer} connected (client {})", subscriber.id);
    let inflight = sc.max_inflight_per_connection;
    let (out_tx, out_rx) = async_channel::bounded::<Out>(inflight + 4);
    // Shared with the writer: a reply the reader has at once it writes itself when the
    // writer is idle (no task wake per request); otherwise it queues it for the writer.
    let sink = Arc::new(async_lock::Mutex::new(sink));
    subscriber.set_outlet(Box::new(SocketOutlet {
        sink: sink.clone(),
        out: out_tx.clone(),
        state: state.clone(),
        session: Arc::downgrade(&session),
    }));
    let write_timeout = sc.idle_timeout.get();
    let writer = smol::spawn(writer_loop(
        sink.clone(),
        out_rx,
        state.clone(),
        session.clone(),
        sc.ping_interval.get(),
        sc.idle_timeout.get(),
    ));
    let permits = Arc::new(async_lock::Semaphore::new(inflight));
    let idle = sc.idle_timeout.get();
    // One idle timer for the connection, moved only when it fires (arming a timer wakes the
    // reactor thread: once per message was a syscall and a context switch per request).
    let mut last_read = Instant::now();
    let mut idle_timer = smol::Timer::at(last_read + idle);
    let mut shutdown = std::pin::pin!(state.shutdown.wait());

    let end = loop {
        let next = futures_lite::future::or(
            futures_lite::future::or(async { Inbound::Msg(source.next().await) }, async {
                (&mut idle_timer).await;
                Inbound::Idle
            }),
            async {
                (&mut shutdown).await;
                Inbound::Shutdown
            },
        )
        .await;
        let was_msg = matches!(next, Inbound::Msg(_));
        match next {
            Inbound::Shutdown => break End::Send(1001, "server shutting down"),
            Inbound::Idle if last_read.elapsed() < idle => idle_timer.set_at(last_read + idle),
            Inbound::Idle => {
                log::info!("dropping WebSocket client {peer}: silent for {idle:?}");
                break End::Send(1000, "idle timeout");
            }
            Inbound::Msg(Some(Ok(Message::Text(text)))) => {
                let permit = permits.acquire_arc().await;
                let (st, se) = (state.clone(), session.clone());
                let mut call = Box::pin(async move { dispatch::handle_frame(&st, &se, text.as_str()).await });
                // Most requests are answered from memory: run them here, without a task
                // (a spawn and a cross-thread wake per request). One that waits (I/O, the
                // controller) goes on as a task of its own, so the reader keeps reading.
                match futures_lite::future::poll_once(&mut call).await {
                    Some(reply) => {
                        drop(permit);
                        if let Some(reply) = reply {
                            match sink.try_lock() {
                                Some(mut direct) => {
                                    // As in the writer: a client that does not read for a
                                    // whole idle period is dropped.
                                    let msg = Message::text(reply);
                                    if !matches!(with_timeout(write_timeout, direct.send(msg)).await, Some(Ok(()))) {
                                        break End::Gone;
                                    }
                                }
                                None => {
                                    let _ = out_tx.send(Out::Text(reply)).await;
                                }
                            }
                        }
                    }
                    None => {
                        let tx = out_tx.clone();
                        smol::spawn(async move {
                            if let Some(reply) = call.await {
                                let _ = tx.send(Out::Text(reply)).await;
                            }
                            drop(permit);
                        })
                        .detach();
                    }
                }
            }
            Inbound::Msg(Some(Ok(Message::Binary(_)))) => break End::Send(1003, "binary frames are not supported"),
            Inbound::Msg(Some(Ok(Message::Close(_)))) => break End::ClientClosed,
            Inbound::Msg(None) => break End::Gone,
            Inbound::Msg(Some(Ok(_))) => {} // ping/pong: tungstenite answers pings itself
            Inbound::Msg(Some(Err(e))) => break protocol_end(peer, e),
        }
        // Counted from the end of handling, as waiting on our own limits is not silence.
        if was_msg {
            last_read = Instant::now();
        }
    };
    let mut counted = true;
    let mut release = || {
        if std::mem::take(&mut counted) {
            state.connections.fetch_sub(1, Ordering::SeqCst);
        }
    };
    match end {
        End::Send(code, reason) => {
            // A full queue means a client that does not read: just drop it.
            let queued = out_tx.try_send(Out::Close(code, reason)).is_ok();
            out_tx.close();
            drop(out_tx);
            // The writer ends after our Close frame (or at once); bounded either way.
            let _ = with_timeout(Duration::from_secs(2), writer).await;
            // Closed from our side: the client no longer counts against max_connections
            // (and shutdown may proceed) while we wait, briefly, for its Close.
            release();
            if queued {
                let _ = with_timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = source.next().await {} }).await;
            }
        }
        End::ClientClosed => {
            out_tx.close();
            drop(out_tx);
            // Reading on flushes the echo tungstenite queued for the client's Close, then
            // ends with the connection. Bounded.
            let _ = with_timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = source.next().await {} }).await;
            let _ = with_timeout(Duration::from_secs(2), writer).await;
        }
        End::Gone => {
            out_tx.close();
            drop(out_tx);
            let _ = with_timeout(Duration::from_secs(2), writer).await;
        }
    }
    release();
    bus.unregister(subscriber.id);
    log::debug!("WebSocket client {peer} disconnected");
}

/// A read error → how to close (RFC 6455 §7.4.1: 1002 protocol error, 1007 invalid UTF-8,
/// 1009 too big).
fn protocol_end(peer: SocketAddr, e: WsError) -> End {
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            log::info!("closing WebSocket client {peer}: message of {size} bytes over the {max_size}-byte limit");
            End::Send(1009, "message too big")
        }
        WsError::Utf8(_) => {
            log::info!("closing WebSocket client {peer}: text frame is not valid UTF-8");
            End::Send(1007, "invalid UTF-8 in a text frame")
        }
        WsError::Protocol(p) => {
            use async_tungstenite::tungstenite::error::ProtocolError;
            if matches!(p, ProtocolError::ResetWithoutClosingHandshake) {
                return End::Gone;
            }
            log::info!("closing WebSocket client {peer}: protocol violation: {p}");
            End::Send(1002, "protocol error")
        }
        WsError::Capacity(c) => {
            log::info!("closing WebSocket client {peer}: {c}");
            End::Send(1009, "frame too big")
        }
        e => {
            log::debug!("WebSocket client {peer} error: {e}");
            End::Gone
        }
    }
}

async fn with_timeout<T>(d: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(f.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

/// Whether the connection's credential still allows events: authenticated, not expired,
/// and (for an API key) not revoked or expired in the key store. Checked for every event
/// at delivery, so a revocation (`camera-service keys revoke`) stops events at once.
fn may_receive_events(state: &AppState, session: &Session) -> bool {
    let guard = session.identity.lock().unwrap();
    let Some(identity) = guard.as_ref() else {
        return false;
    };
    let now = crate::clock::unix_now();
    if identity.expires_at.is_some_and(|e| e <= now) {
        return false;
    }
    match &identity.method {
        AuthMethod::ApiKey { key_id } => {
            let key_id = key_id.clone();
            drop(guard);
            state.keys.is_active(&key_id, now)
        }
        AuthMethod::Jwt => true,
    }
}

type Sink = async_tungstenite::WebSocketSender<TcpStream>;

/// The connection's socket as the event bus sees it: publishers write a notification
/// themselves when the send half is free and nothing is queued, and never wait.
struct SocketOutlet {
    sink: Arc<async_lock::Mutex<Sink>>,
    out: async_channel::Sender<Out>,
    state: Arc<AppState>,
    /// Weak: the session holds the subscriber, which holds this.
    session: std::sync::Weak<Session>,
}

impl Outlet for SocketOutlet {
    fn try_write(&self, sub: &Subscriber, text: &Utf8Bytes) -> Direct {
        // Held by the writer or a reply: the writer takes it from the queue.
        let Some(mut sink) = self.sink.try_lock() else {
            return Direct::Busy;
        };
        if sub.backlog() > 0 {
            return Direct::Busy;
        }
        match self.session.upgrade() {
            Some(session) if may_receive_events(&self.state, &session) => {}
            _ => return Direct::Refused,
        }
        // Polled once with a waker that does nothing: nothing here waits for the socket.
        // Frames left unwritten are the writer's to flush (it waits on the socket).
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let mut sink = Pin::new(&mut *sink);
        match sink.as_mut().poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Pending => return Direct::Busy, // earlier frames still wait for the socket
            Poll::Ready(Err(_)) => return Direct::Refused, // broken: the reader ends it
        }
        if sink.as_mut().start_send(Message::Text(text.clone())).is_err() {
            return Direct::Refused;
        }
        if sink.poll_flush(&mut cx).is_pending() {
            // A full queue means the writer has work and flushes after it anyway.
            let _ = self.out.try_send(Out::Flush);
        }
        Direct::Written
    }
}

/// Most frames written per flush: what is already queued when the writer wakes (a burst of
/// events, answers of a batch of calls) goes out in one write, not one syscall per frame.
const MAX_BATCH: usize = 32;

enum Next {
    Out(Option<Out>),
    Event(Utf8Bytes),
    Ping,
}

/// What the writer does with a queued item.
enum Step {
    Send(Message),
    /// Send this queued event (publishers wait for the queue to drain: see `backlog`).
    Event(Message),
    SkipEvent,
    /// Send this frame, flush and end (our Close frame).
    Last(Message),
    Skip,
    /// Flush and end: the reader is gone.
    Stop,
}

/// Something more to write, if it is already there.
fn try_next(out: &async_channel::Receiver<Out>, events: &async_channel::Receiver<Utf8Bytes>) -> Option<Next> {
    match out.try_recv() {
        Ok(o) => Some(Next::Out(Some(o))),
        Err(async_channel::TryRecvError::Closed) => Some(Next::Out(None)),
        Err(async_channel::TryRecvError::Empty) => events.try_recv().ok().map(Next::Event),
    }
}

async fn writer_loop(
    sink: Arc<async_lock::Mutex<Sink>>,
    out: async_channel::Receiver<Out>,
    state: Arc<AppState>,
    session: Arc<Session>,
    ping_every: Duration,
    write_timeout: Duration,
) {
    let subscriber = session.subscriber.clone();
    let events = subscriber.queue();
    // Armed once, moved after each ping (arming a timer per frame woke the reactor thread).
    let mut ping = smol::Timer::after(ping_every);
    loop {
        let first = futures_lite::future::or(
            async { Next::Out(out.recv().await.ok()) },
            futures_lite::future::or(
                async {
                    match events.recv().await {
                        Ok(e) => Next::Event(e),
                        Err(_) => futures_lite::future::pending().await,
                    }
                },
                async {
                    (&mut ping).await;
                    Next::Ping
                },
            ),
        )
        .await;
        let mut step = |next: Next| match next {
            Next::Out(None) => Step::Stop,
            Next::Out(Some(Out::Text(t))) => Step::Send(Message::text(t)),
            Next::Out(Some(Out::Flush)) => Step::Skip, // the batch ends with a flush
            Next::Out(Some(Out::Close(code, reason))) => Step::Last(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }))),
            Next::Event(e) if may_receive_events(&state, &session) => Step::Event(Message::Text(e)),
            Next::Event(_) => Step::SkipEvent,
            Next::Ping => {
                ping.set_after(ping_every);
                Step::Send(Message::Ping(Vec::new().into()))
            }
        };
        // A client that does not read for a whole idle period is dropped.
        let sent = with_timeout(write_timeout, async {
            let mut sink = sink.lock().await;
            let mut next = Some(first);
            let mut written = 0;
            while let Some(item) = next.take() {
                match step(item) {
                    Step::Send(msg) => sink.feed(msg).await?,
                    Step::Event(msg) => {
                        sink.feed(msg).await?;
                        subscriber.dequeued();
                    }
                    Step::SkipEvent => subscriber.dequeued(),
                    Step::Last(msg) => {
                        sink.send(msg).await?;
                        return Ok(false);
                    }
                    Step::Skip => {}
                    Step::Stop => {
                        sink.flush().await?;
                        return Ok(false);
                    }
                }
                written += 1;
                if written < MAX_BATCH {
                    next = try_next(&out, events);
                }
            }
            sink.flush().await?;
            Ok::<bool, WsError>(true)
        })
        .await;
        if !matches!(sent, Some(Ok(true))) {
            return;
        }
    }
}
