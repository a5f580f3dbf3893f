//! The client's messages, reassembled from their fragments under one size limit per
//! message, however it is cut into frames: a frame over the limit, or fragments whose total
//! passes it, is [`TooBig`] (the socket closes with 1009). actix-ws's own aggregation reports
//! an oversized fragmented message as an I/O error, which read as a protocol error (1002).

use actix_web::web::Bytes;
use actix_ws::{Item, Message, MessageStream, ProtocolError};

/// A whole client message.
#[derive(Debug)]
pub(super) enum Incoming {
    Text(String),
    /// A binary message (its bytes are not kept: the protocol has no binary frames).
    Binary,
    Ping(Bytes),
    Pong,
    Close,
}

/// Why the stream of messages ends.
#[derive(Debug)]
pub(super) enum Broken {
    /// A message over the limit (close 1009).
    TooBig,
    /// Not the WebSocket protocol, or text that is not UTF-8 (close 1002).
    Protocol(ProtocolError),
}

/// The messages of one socket.
pub(super) struct Messages {
    stream: MessageStream,
    /// Largest message, in bytes.
    max: usize,
    /// The fragments of the message in progress (none between messages).
    parts: Vec<Bytes>,
    size: usize,
    text: bool,
}

impl Messages {
    /// Messages of `stream`, each at most `max` bytes.
    pub(super) fn new(stream: MessageStream, max: usize) -> Self {
        Self {
            stream: stream.max_frame_size(max),
            max,
            parts: Vec::new(),
            size: 0,
            text: false,
        }
    }

    /// The next whole message; `None` once the connection is closed.
    pub(super) async fn recv(&mut self) -> Option<Result<Incoming, Broken>> {
        loop {
            let message = match self.stream.recv().await? {
                Ok(m) => m,
                Err(ProtocolError::Overflow) => return Some(Err(Broken::TooBig)),
                Err(e) => return Some(Err(Broken::Protocol(e))),
            };
            let whole = match message {
                Message::Text(text) => Incoming::Text(text.to_string()),
                Message::Binary(_) => Incoming::Binary,
                Message::Ping(bytes) => Incoming::Ping(bytes),
                Message::Pong(_) => Incoming::Pong,
                Message::Close(_) => Incoming::Close,
                Message::Nop => continue,
                Message::Continuation(item) => match self.fragment(item) {
                    Ok(None) => continue,
                    Ok(Some(whole)) => whole,
                    Err(broken) => return Some(Err(broken)),
                },
            };
            return Some(Ok(whole));
        }
    }

    fn start(&mut self, text: bool) {
        self.text = text;
        self.parts.clear();
        self.size = 0;
    }

    /// Adds a fragment; the message once its last fragment came.
    fn fragment(&mut self, item: Item) -> Result<Option<Incoming>, Broken> {
        let (bytes, last) = match item {
            Item::FirstText(b) => {
                self.start(true);
                (b, false)
            }
            Item::FirstBinary(b) => {
                self.start(false);
                (b, false)
            }
            Item::Continue(b) => (b, false),
            Item::Last(b) => (b, true),
        };
        self.size += bytes.len();
        if self.size > self.max {
            self.parts = Vec::new();
            return Err(Broken::TooBig);
        }
        if self.text && !bytes.is_empty() {
            self.parts.push(bytes);
        }
        if !last {
            return Ok(None);
        }
        if !self.text {
            self.size = 0;
            return Ok(Some(Incoming::Binary));
        }
        let mut whole = Vec::with_capacity(self.size);
        for part in std::mem::take(&mut self.parts) {
            whole.extend_from_slice(&part);
        }
        self.size = 0;
        Ok(Some({
            let text = String::from_utf8(whole).map_err(|e| {
                Broken::Protocol(ProtocolError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e,
                )))
            })?;
            Incoming::Text(text)
        }))
    }
}
