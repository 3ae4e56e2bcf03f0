//! Messages on endpoints: calls, replies and receives with up to four words in registers.

use sel4_sys::{MessageInfo, Word, syscall};

use crate::Endpoint;

/// A short message: its info word (label, length) and up to four words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Message {
    /// Label and length.
    pub info: MessageInfo,
    /// Message registers 0-3.
    pub words: [Word; 4],
}

impl Message {
    /// A message with `label` and the given words (at most four are sent).
    pub fn new(label: Word, words: &[Word]) -> Self {
        let mut w = [0; 4];
        let n = words.len().min(4);
        w[..n].copy_from_slice(&words[..n]);
        Message {
            info: MessageInfo::new(label, 0, 0, n as Word),
            words: w,
        }
    }

    /// The label.
    pub fn label(&self) -> Word {
        self.info.label()
    }
}

impl Endpoint {
    /// Sends and waits for the reply (a protected call).
    pub fn call(self, m: Message) -> Message {
        // SAFETY: a register-only message; the IPC buffer is not touched beyond the kernel's
        // own use, and no Rust memory changes.
        let (info, _, words) = unsafe { syscall::call(self.0, m.info, m.words) };
        Message { info, words }
    }

    /// Sends without waiting for a reply (blocks until received).
    pub fn send(self, m: Message) {
        // SAFETY: as for `call`.
        unsafe { syscall::send(self.0, m.info, m.words) }
    }

    /// Waits for a message; returns it with the sender's badge.
    pub fn recv(self) -> (Message, Word) {
        // SAFETY: as for `call`.
        let (info, badge, words) = unsafe { syscall::recv(self.0) };
        (Message { info, words }, badge)
    }

    /// Replies to the last caller, then waits on this endpoint.
    pub fn reply_recv(self, reply: Message) -> (Message, Word) {
        // SAFETY: as for `call`.
        let (info, badge, words) = unsafe { syscall::reply_recv(self.0, reply.info, reply.words) };
        (Message { info, words }, badge)
    }
}

/// Replies to the last caller.
pub fn reply(m: Message) {
    // SAFETY: as for `Endpoint::call`.
    unsafe { syscall::reply(m.info, m.words) }
}
