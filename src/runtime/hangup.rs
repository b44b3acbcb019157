//! Noticing that a connection's peer hung up while nothing reads the socket (a client blocked in BLPOP):
//! one io_uring poll for POLLRDHUP on the socket. Unlike a read it consumes nothing, so bytes the client
//! pipelined behind its blocking command stay in the socket for the connection's next read, and unlike
//! POLLIN it is not satisfied by those bytes: it completes only on the peer's FIN or an error.

use super::TcpStream;
use compio::driver::{AsRawFd, OpCode, OpEntry};

/// Resolves once `stream`'s peer has closed its side (or the socket failed). Dropping the future cancels
/// the poll.
pub async fn peer_closed(stream: &TcpStream) {
    // Whatever the poll's result (an error included), the connection cannot be served any more.
    let _ = compio::runtime::submit(HangUp(stream.clone())).await;
}

/// The poll holds its own handle of the socket, so the descriptor outlives a cancelled poll.
struct HangUp(TcpStream);

// SAFETY: the entry refers only to the descriptor, which `self.0` keeps open until the operation is
// complete (compio keeps the op alive until its completion, cancelled or not).
unsafe impl OpCode for HangUp {
    type Control = ();

    fn create_entry(&mut self, _: &mut ()) -> OpEntry {
        let fd = io_uring::types::Fd(self.0.as_raw_fd());
        let events = (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) as u32;
        io_uring::opcode::PollAdd::new(fd, events).build().into()
    }
}
