//! The yardstick of `bench-rpc`: the bare transport, i.e. the same runtime (smol) and WebSocket
//! crate (async-tungstenite, default config) with nothing of ours on the path.
//! - `serve_echo`: answers every text frame with a canned JSON-RPC pong (carrying the request's
//!   id), one task per connection that reads and writes in turn. Run in a process of its own,
//!   like the service, with the same number of executor threads.
//! - `Hub`: in-process fan-out; one task writes each message to every connection in turn.

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::{Message, Utf8Bytes};
use async_tungstenite::WebSocketStream;
use futures_util::StreamExt;
use smol::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// The service's read buffer (`api/websocket.rs` READ_BUFFER), else defaults. tungstenite
/// zero-fills its read buffer before every read: with the default 128 KiB that memset, not
/// the transport, would dominate a small frame's cost.
fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// `{"jsonrpc":"2.0","result":"pong","id":<the request's id>}`; the id is cut out of the
/// request text, not parsed.
fn pong(request: &str) -> String {
    let id = request
        .find("\"id\":")
        .map(|i| request[i + 5..].split(['}', ',']).next().unwrap_or("null").trim())
        .unwrap_or("null");
    format!("{{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":{id}}}")
}

/// Runs the echo server until killed; prints `bare echo listening on <addr>` once bound.
pub fn serve_echo() {
    smol::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("bare echo listening on {}", listener.local_addr().unwrap());
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true); // as the service does
            smol::spawn(async move {
                let Ok(mut ws) = async_tungstenite::accept_async_with_config(stream, Some(config())).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        if ws.send(Message::text(pong(t.as_str()))).await.is_err() {
                            break;
                        }
                    }
                }
            })
            .detach();
        }
    })
}

/// Broadcast to every connected client, the simplest way: the accepted sockets in a list.
pub struct Hub {
    pub addr: String,
    clients: Arc<Mutex<Vec<WebSocketStream<TcpStream>>>>,
    _accept: smol::Task<()>,
}

impl Hub {
    pub async fn start() -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let clients = Arc::new(Mutex::new(Vec::new()));
        let list = clients.clone();
        let accept = smol::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = stream.set_nodelay(true);
                let list = list.clone();
                smol::spawn(async move {
                    if let Ok(ws) = async_tungstenite::accept_async_with_config(stream, Some(config())).await {
                        list.lock().unwrap().push(ws);
                    }
                })
                .detach();
            }
        });
        Hub {
            addr,
            clients,
            _accept: accept,
        }
    }

    pub fn connected(&self) -> usize {
        self.clients.lock().unwrap().len()
    }

    /// Sends `text` to every client, one after the other, on an executor thread (where the
    /// service's writers run too).
    pub async fn broadcast(&self, text: String) {
        let mut clients = std::mem::take(&mut *self.clients.lock().unwrap());
        let text = Utf8Bytes::from(text);
        clients = smol::spawn(async move {
            for ws in clients.iter_mut() {
                let _ = ws.send(Message::Text(text.clone())).await;
            }
            clients
        })
        .await;
        *self.clients.lock().unwrap() = clients;
    }
}
