//! One WebSocket client: a reader that runs requests concurrently (bounded per socket) and a
//! writer that owns the socket's send half and drains responses, events and pings.

use super::auth::TokenBucket;
use super::{dispatch, AppState, Session};
use async_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_util::StreamExt;
use smol::net::TcpStream;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

enum Out {
    Text(String),
    Close(u16, &'static str),
}

enum Inbound {
    Msg(Option<Result<Message, WsError>>),
    Idle,
    Shutdown,
}

pub async fn run(state: Arc<AppState>, stream: TcpStream, peer: SocketAddr, host: String, leftover: Vec<u8>) {
    let sc = &state.config.server;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(sc.max_message_bytes))
        .max_frame_size(Some(sc.max_message_bytes));
    let ws = WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(ws_config)).await;
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
    let writer = smol::spawn(writer_loop(
        sink,
        out_rx,
        subscriber.clone(),
        sc.ping_interval.get(),
        sc.idle_timeout.get(),
    ));
    let permits = Arc::new(async_lock::Semaphore::new(inflight));
    let idle = sc.idle_timeout.get();

    let close = loop {
        let next = futures_lite::future::or(
            futures_lite::future::or(async { Inbound::Msg(source.next().await) }, async {
                smol::Timer::after(idle).await;
                Inbound::Idle
            }),
            async {
                state.shutdown.wait().await;
                Inbound::Shutdown
            },
        )
        .await;
        match next {
            Inbound::Shutdown => break Some((1001, "server shutting down")),
            Inbound::Idle => {
                log::info!("dropping WebSocket client {peer}: silent for {idle:?}");
                break Some((1000, "idle timeout"));
            }
            Inbound::Msg(Some(Ok(Message::Text(text)))) => {
                let permit = permits.acquire_arc().await;
                let (st, se, tx) = (state.clone(), session.clone(), out_tx.clone());
                smol::spawn(async move {
                    if let Some(reply) = dispatch::handle_frame(&st, &se, text.as_str()).await {
                        let _ = tx.send(Out::Text(reply)).await;
                    }
                    drop(permit);
                })
                .detach();
            }
            Inbound::Msg(Some(Ok(Message::Binary(_)))) => break Some((1003, "binary frames are not supported")),
            Inbound::Msg(Some(Ok(Message::Close(_)))) | Inbound::Msg(None) => break None,
            Inbound::Msg(Some(Ok(_))) => {} // ping/pong: tungstenite answers pings itself
            Inbound::Msg(Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size })))) => {
                log::info!("closing WebSocket client {peer}: message of {size} bytes over the {max_size}-byte limit");
                break Some((1009, "message too big"));
            }
            Inbound::Msg(Some(Err(e))) => {
                log::debug!("WebSocket client {peer} error: {e}");
                break None;
            }
        }
    };
    match close {
        Some((code, reason)) => {
            // A full queue means a client that does not read: just drop it.
            if out_tx.try_send(Out::Close(code, reason)).is_err() {
                out_tx.close();
            }
        }
        None => {
            out_tx.close();
        }
    }
    drop(out_tx);
    // The writer ends after the close frame (or at once); bounded either way.
    let _ = futures_lite::future::or(
        async {
            writer.await;
            Some(())
        },
        async {
            smol::Timer::after(Duration::from_secs(2)).await;
            None
        },
    )
    .await;
    bus.unregister(subscriber.id);
    log::debug!("WebSocket client {peer} disconnected");
}

type Sink = async_tungstenite::WebSocketSender<TcpStream>;

enum Next {
    Out(Option<Out>),
    Event(Arc<str>),
    Ping,
}

async fn writer_loop(
    mut sink: Sink,
    out: async_channel::Receiver<Out>,
    subscriber: Arc<super::events::Subscriber>,
    ping_every: Duration,
    write_timeout: Duration,
) {
    let mut next_ping = Instant::now() + ping_every;
    loop {
        let next = futures_lite::future::or(
            async { Next::Out(out.recv().await.ok()) },
            futures_lite::future::or(
                async {
                    match subscriber.queue().recv().await {
                        Ok(e) => Next::Event(e),
                        Err(_) => futures_lite::future::pending().await,
                    }
                },
                async {
                    smol::Timer::at(next_ping).await;
                    Next::Ping
                },
            ),
        )
        .await;
        let (msg, last) = match next {
            Next::Out(None) => return,
            Next::Out(Some(Out::Text(t))) => (Message::text(t), false),
            Next::Out(Some(Out::Close(code, reason))) => (
                Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                })),
                true,
            ),
            Next::Event(e) => (Message::text(e.to_string()), false),
            Next::Ping => {
                next_ping = Instant::now() + ping_every;
                (Message::Ping(Vec::new().into()), false)
            }
        };
        // A client that does not read for a whole idle period is dropped.
        let sent = futures_lite::future::or(async { Some(sink.send(msg).await) }, async {
            smol::Timer::after(write_timeout).await;
            None
        })
        .await;
        match sent {
            Some(Ok(())) if !last => {}
            _ => return,
        }
    }
}
