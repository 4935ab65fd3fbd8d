//! `Connection`: one client's byte stream (plain TCP, or TLS after STARTTLS)
//! with our own read buffer, and replies queued to go out with the next.
//!
//! Lines are split and capped here, so no library ever buffers a client's
//! input without limit: a piece is handed out at the first LF or when the cap
//! is reached, whichever comes first. This module knows bytes and sockets; it
//! knows nothing of SMTP commands, deadlines or limits beyond the cap it is
//! given.

use bytes::BufMut as _;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// How many bytes one read asks the socket for.
const READ_CHUNK: usize = 8 * 1024;

/// After a final reply, how long (and how much) unread input is drained so
/// the reply is not lost to a TCP reset.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// A byte stream a session can run on.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One piece of input, at most the cap it was asked for, lent from the
/// connection's buffer until the next read.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes up to and including an LF.
    Line(&'a [u8]),
    /// The cap was reached without an LF; more of the same line follows.
    /// Never ends in CR, so a CR LF pair is never split across pieces.
    Partial(&'a [u8]),
}

impl<'a> Piece<'a> {
    pub fn bytes(&self) -> &'a [u8] {
        match self {
            Piece::Line(bytes) | Piece::Partial(bytes) => bytes,
        }
    }
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the connection.
    Closed,
    /// The deadline passed.
    TimedOut,
    Io(io::Error),
}

pub struct Connection {
    io: Box<dyn Io>,
    /// Received bytes; those before `start` were handed out already.
    buffer: Vec<u8>,
    start: usize,
    /// Replies queued (`queue`), sent ahead of the next `write`.
    queued: Vec<u8>,
}

impl Connection {
    pub fn new(io: impl Io + 'static) -> Self {
        Self {
            io: Box::new(io),
            buffer: Vec::with_capacity(READ_CHUNK),
            start: 0,
            queued: Vec::new(),
        }
    }

    /// Bytes queued to go out with the next `write` or `flush`.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Queues `bytes` to go out, in order, ahead of the next `write`: the
    /// replies to pipelined commands leave together (RFC 2920, 3.2).
    pub fn queue(&mut self, bytes: &[u8]) {
        self.queued.extend_from_slice(bytes);
    }

    /// Bytes received and not yet handed out: input the client sent ahead of
    /// our reply (pipelined).
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// Hands out the next piece from the buffer, at most `cap` bytes, or
    /// `None` when more input is needed. The piece is lent, not copied: a
    /// message body is read a line at a time, and its lines go straight
    /// from here into the message. `fill` drops what was handed out.
    pub fn take_piece(&mut self, cap: usize) -> Option<Piece<'_>> {
        let cap = cap.max(2);
        let unread = &self.buffer[self.start..];
        let piece = if let Some(at) = memchr::memchr(b'\n', &unread[..unread.len().min(cap)]) {
            Piece::Line(&unread[..=at])
        } else if unread.len() < cap {
            return None;
        } else {
            // Cut before a trailing CR so that its LF, if one follows, stays
            // with it: the caller can then judge every CR within one piece.
            let cut = if unread[cap - 1] == b'\r' {
                cap - 1
            } else {
                cap
            };
            Piece::Partial(&unread[..cut])
        };
        self.start += piece.bytes().len();
        Some(piece)
    }

    /// Reads once from the socket into the buffer, waiting until `deadline`.
    ///
    /// Cancel-safe: dropping the future loses no input.
    ///
    /// # Errors
    /// `Closed` at end of input, `TimedOut` when the deadline passed.
    pub async fn fill(&mut self, deadline: Instant) -> Result<usize, ReadError> {
        // Drop what was handed out before growing: the buffer stays within
        // one cap plus one chunk. The socket writes straight into the
        // buffer's spare room, at most one chunk, which is never zeroed.
        self.buffer.drain(..self.start);
        self.start = 0;
        self.buffer.reserve(READ_CHUNK);
        let mut room = (&mut self.buffer).limit(READ_CHUNK);
        match tokio::time::timeout_at(deadline, self.io.read_buf(&mut room)).await {
            Err(_) => Err(ReadError::TimedOut),
            Ok(Err(error)) => Err(ReadError::Io(error)),
            Ok(Ok(0)) => Err(ReadError::Closed),
            Ok(Ok(read)) => Ok(read),
        }
    }

    /// Writes what is queued, then `bytes`, in one piece when it can, and
    /// flushes, giving up at `deadline` (a client that never reads must not
    /// hold the session for ever).
    ///
    /// # Errors
    /// The write failed or timed out.
    pub async fn write(&mut self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        let out = if self.queued.is_empty() {
            bytes
        } else {
            self.queued.extend_from_slice(bytes);
            &self.queued
        };
        let write = async {
            self.io.write_all(out).await?;
            self.io.flush().await
        };
        let written = tokio::time::timeout_at(deadline, write)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
        self.queued.clear();
        written?
    }

    /// Sends what is queued, if anything.
    ///
    /// # Errors
    /// The write failed or timed out.
    pub async fn flush(&mut self, deadline: Instant) -> io::Result<()> {
        if self.queued.is_empty() {
            return Ok(());
        }
        self.write(&[], deadline).await
    }

    /// Runs the TLS handshake over this connection (after `220` to STARTTLS).
    /// The buffer must be empty: plaintext sent ahead of the handshake is
    /// never carried into the TLS session.
    ///
    /// # Errors
    /// The handshake failed or timed out; the connection is unusable.
    pub async fn upgrade(&mut self, acceptor: &TlsAcceptor, deadline: Instant) -> io::Result<()> {
        debug_assert_eq!(self.buffered(), 0, "plaintext left before TLS");
        self.buffer.clear();
        self.start = 0;
        let plain = std::mem::replace(&mut self.io, Box::new(tokio::io::empty()));
        let tls = tokio::time::timeout_at(deadline, acceptor.accept(plain))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.io = Box::new(tls);
        Ok(())
    }

    /// Closes after a final reply: sends our end of the stream, then reads
    /// and discards what the client still sends for a short, bounded time, so
    /// the kernel does not answer unread input with a reset that could wipe
    /// our last reply from the client's buffer.
    pub async fn close(mut self) {
        let linger = async {
            if !self.queued.is_empty() {
                let _ = self.io.write_all(&self.queued).await;
            }
            let _ = self.io.shutdown().await;
            let mut chunk = [0u8; READ_CHUNK];
            let mut drained = 0;
            while drained < LINGER_BYTES {
                match self.io.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => drained += read,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, linger).await;
    }
}

/// Whether `bytes` hold a CR not followed by LF or an LF not preceded by CR.
/// Pieces never split a CR LF pair, so judging each piece alone is exact.
pub fn has_bare_line_ending(bytes: &[u8]) -> bool {
    memchr::memchr2_iter(b'\r', b'\n', bytes).any(|at| match bytes[at] {
        b'\n' => at == 0 || bytes[at - 1] != b'\r',
        _ => bytes.get(at + 1) != Some(&b'\n'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection_with(input: &[u8]) -> Connection {
        let mut connection = Connection::new(tokio::io::empty());
        connection.buffer.extend_from_slice(input);
        connection
    }

    /// A stream that records each write it is asked for.
    #[derive(Default, Clone)]
    struct Recorder {
        writes: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    }

    impl tokio::io::AsyncRead for Recorder {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    impl tokio::io::AsyncWrite for Recorder {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.writes.lock().expect("lock").push(buf.to_vec());
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn queued_replies_leave_in_order_with_the_next_write_in_one_piece() {
        let recorder = Recorder::default();
        let mut connection = Connection::new(recorder.clone());
        let deadline = Instant::now() + Duration::from_secs(1);
        connection.flush(deadline).await.expect("nothing to flush");
        connection.queue(b"250 2.1.0 ok\r\n");
        connection.queue(b"250 2.1.5 ok\r\n");
        assert!(
            recorder.writes.lock().expect("lock").is_empty(),
            "queued only"
        );
        assert_eq!(connection.queued(), 28);

        connection
            .write(b"354 go ahead\r\n", deadline)
            .await
            .expect("writes");
        connection.flush(deadline).await.expect("nothing left");

        let writes = recorder.writes.lock().expect("lock").clone();
        assert_eq!(
            writes,
            vec![b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n".to_vec()]
        );
        assert_eq!(connection.queued(), 0);
    }

    #[test]
    fn pieces_end_at_each_line_feed() {
        let mut connection = connection_with(b"EHLO a\r\nNOOP\r\nQU");
        assert_eq!(
            connection.take_piece(100),
            Some(Piece::Line(&b"EHLO a\r\n"[..]))
        );
        assert_eq!(
            connection.take_piece(100),
            Some(Piece::Line(&b"NOOP\r\n"[..]))
        );
        assert_eq!(connection.take_piece(100), None);
        assert_eq!(connection.buffered(), 2);
    }

    #[test]
    fn a_line_longer_than_the_cap_comes_out_in_partial_pieces() {
        let mut connection = connection_with(b"abcdefgh\r\n");
        assert_eq!(connection.take_piece(4), Some(Piece::Partial(&b"abcd"[..])));
        assert_eq!(connection.take_piece(4), Some(Piece::Partial(&b"efgh"[..])));
        assert_eq!(connection.take_piece(4), Some(Piece::Line(&b"\r\n"[..])));
    }

    #[test]
    fn a_partial_piece_never_ends_between_cr_and_lf() {
        let mut connection = connection_with(b"abc\r\ndef");
        assert_eq!(connection.take_piece(4), Some(Piece::Partial(&b"abc"[..])));
        assert_eq!(connection.take_piece(4), Some(Piece::Line(&b"\r\n"[..])));
    }

    #[test]
    fn bare_line_endings_are_recognised() {
        let cases: [(&[u8], bool, &str); 7] = [
            (b"line\r\n", false, "CRLF"),
            (b"line\n", true, "bare LF at the end"),
            (b"\n", true, "a lone LF"),
            (b"a\rb\r\n", true, "bare CR inside"),
            (b"a\r", true, "bare CR at the end"),
            (b"a\r\r\n", true, "CR before CRLF"),
            (b"no ending", false, "no line ending at all"),
        ];
        for (bytes, bare, description) in cases {
            assert_eq!(has_bare_line_ending(bytes), bare, "{description}");
        }
    }
}
