//! The server's TCP connections: how many are open (so a shutdown knows the moment nothing is
//! left, instead of actix-server's once-a-second check of its workers), and, on Unix, a handle
//! on each one's socket for the WebSocket route.
//!
//! Why the WebSocket route needs the socket: actix-http treats the WebSocket as a response
//! whose request body never ends, so once the close frame is written it *lingers*, reading
//! until the client closes TCP or `client_disconnect_timeout` (1 s) passes; a client, as
//! RFC 6455 §7.1.1 says, waits for the server to close TCP first. Each close so took one
//! second. After its close frame is out, the socket shuts its connection down for writing
//! (the server's TCP close): the client closes its side at once, the linger sees it and the
//! connection ends within a round trip. The handle is a duplicate of the connection's file
//! descriptor (`dup`, close-on-exec), so using it can never reach another connection's socket.
//! A connection keeps the duplicate only while it may still become a WebSocket: the first
//! request that is not an upgrade drops it ([`forget_socket_unless_upgrade`]), so only
//! WebSockets hold two descriptors.
//!
//! Register with `HttpServer::on_connect(connections.hook())`.

use actix_web::HttpRequest;
use actix_web::dev::Extensions;
use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// The open connections of a server.
#[derive(Debug, Default)]
pub struct Connections {
    open: AtomicUsize,
    /// Woken each time the count reaches zero.
    idle: Notify,
}

/// What each connection carries (in its connection data): its place in the count, and its
/// socket.
struct Connection {
    _open: Open,
    /// Until the connection turns out not to be a WebSocket.
    socket: RefCell<Option<std::net::TcpStream>>,
}

/// One open connection; uncounted when the connection (and its data) is dropped.
struct Open(Arc<Connections>);

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Connections {
    /// No connection yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The `on_connect` callback: counts the connection and keeps a handle on its socket.
    pub fn hook(self: &Arc<Self>) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
        let connections = self.clone();
        move |io, data| {
            connections.open.fetch_add(1, Ordering::AcqRel);
            data.insert(Connection {
                _open: Open(connections.clone()),
                socket: RefCell::new(duplicate(io)),
            });
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Resolves once no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let idle = self.idle.notified();
            if self.open() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// A duplicate of the connection's socket (plain TCP on Unix; `None` otherwise).
fn duplicate(io: &dyn Any) -> Option<std::net::TcpStream> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let tcp = io.downcast_ref::<actix_web::rt::net::TcpStream>()?;
        let fd = tcp.as_fd().try_clone_to_owned().ok()?;
        Some(std::net::TcpStream::from(fd))
    }
    #[cfg(not(unix))]
    {
        let _ = io;
        None
    }
}

/// Takes the socket of the request's connection (a WebSocket's), when the server was given
/// [`Connections::hook`].
pub(crate) fn socket_of(req: &HttpRequest) -> Option<std::net::TcpStream> {
    req.conn_data::<Connection>()
        .and_then(|c| c.socket.borrow_mut().take())
}

/// Drops the connection's duplicate socket when `req` is not a WebSocket upgrade (a
/// connection that served another request is not one a browser opens a WebSocket on).
pub fn forget_socket_unless_upgrade(req: &HttpRequest) {
    if !req.head().upgrade()
        && let Some(c) = req.conn_data::<Connection>()
    {
        c.socket.borrow_mut().take();
    }
}
