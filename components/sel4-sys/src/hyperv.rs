//! The kernel's Hyper-V service: the three invocations of the `X86HyperV` capability that our
//! kernel patch adds (`build/sel4-patches/0001-x86-hyperv-service.patch`; design:
//! `components/HYPERV-SERVICE.md`). The kernel builds the hypercall input from message words in
//! a page of its own; nothing here passes a pointer.
//!
//! | invocation | message words | reply |
//! |---|---|---|
//! | `X86HyperVPostMessage` | connection id, message type, payload length (≤ 240), then the payload in little-endian words | the 16-bit hypercall status |
//! | `X86HyperVSignalEvent` | connection id, flag number (≤ 0xFFFF) | the 16-bit hypercall status |
//! | `X86HyperVEndOfMessage` | none | none |
//!
//! The kernel refuses a payload longer than 240 bytes with `RangeError`, fewer message words
//! than the length needs with `TruncatedMessage`, a connection id or message type wider than 32
//! bits with `InvalidArgument`. A hypercall status is the hypervisor's answer (0 is success,
//! 0x12 an unknown connection id, 0x13 a full queue, ...) and is returned as `Ok`.

use crate::{CPtr, Error, MessageInfo, Word, invoke, label, reply_words};

/// Largest payload of a posted message (HV_MESSAGE_PAYLOAD: 240 bytes).
pub const MAX_POST_PAYLOAD: usize = 240;

/// Message words of the longest post: connection id, type, length and 30 payload words.
pub const POST_WORDS: usize = 3 + MAX_POST_PAYLOAD / 8;

/// Message words of a post of `payload`: connection id, type, length, then the payload packed
/// into little-endian words (the last one zero-padded); `None` when it is longer than
/// [`MAX_POST_PAYLOAD`].
pub fn post_message_words(
    connection: u32,
    message_type: u32,
    payload: &[u8],
) -> Option<([Word; POST_WORDS], usize)> {
    if payload.len() > MAX_POST_PAYLOAD {
        return None;
    }
    let mut words = [0 as Word; POST_WORDS];
    words[0] = Word::from(connection);
    words[1] = Word::from(message_type);
    words[2] = payload.len() as Word;
    for (w, chunk) in words[3..].iter_mut().zip(payload.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = Word::from_le_bytes(b);
    }
    Some((words, 3 + payload.len().div_ceil(8)))
}

/// The hypercall status of a reply: the error of the kernel's label, or the low 16 bits of the
/// first reply word (a reply without that word is one the kernel never sends: `Unknown(0)`).
fn status(reply: MessageInfo, first_word: impl FnOnce() -> Word) -> Result<u16, Error> {
    Error::check(reply.label())?;
    if reply.length() < 1 {
        return Err(Error::Unknown(0));
    }
    Ok((first_word() & 0xffff) as u16)
}

/// `X86HyperVPostMessage`: HvCallPostMessage of `payload` (at most [`MAX_POST_PAYLOAD`] bytes)
/// with type `message_type` (1 for VMBus) to `connection`; the hypercall's status, or the
/// kernel's refusal. A payload that is too long is refused here, as the kernel would
/// (`RangeError`), without a system call.
///
/// # Safety
///
/// The calling thread's IPC buffer is set up (`gs` points at it), as for every invocation.
/// The invocation itself changes no memory of the caller's.
pub unsafe fn x86_hyperv_post_message(
    cap: CPtr,
    connection: u32,
    message_type: u32,
    payload: &[u8],
) -> Result<u16, Error> {
    let (words, n) =
        post_message_words(connection, message_type, payload).ok_or(Error::RangeError)?;
    // SAFETY: the caller's contract (IPC buffer); the hypercall reads only a kernel page.
    let reply = unsafe { invoke(cap, label::X86HyperVPostMessage, &[], &words[..n]) };
    // SAFETY: `invoke` left the reply's message words in this thread's IPC buffer.
    status(reply, || unsafe { reply_words::<1>() }[0])
}

/// `X86HyperVSignalEvent`: HvCallSignalEvent (the fast form) on `connection` with flag number
/// `flag` (VMBus uses 0); the hypercall's status, or the kernel's refusal.
///
/// # Safety
///
/// As for [`x86_hyperv_post_message`].
pub unsafe fn x86_hyperv_signal_event(cap: CPtr, connection: u32, flag: u16) -> Result<u16, Error> {
    let words = [Word::from(connection), Word::from(flag)];
    // SAFETY: the caller's contract; the fast hypercall touches no memory.
    let reply = unsafe { invoke(cap, label::X86HyperVSignalEvent, &[], &words) };
    // SAFETY: as in `x86_hyperv_post_message`.
    status(reply, || unsafe { reply_words::<1>() }[0])
}

/// `X86HyperVEndOfMessage`: writes the EOM MSR, after the caller cleared its message slot, so
/// that the hypervisor delivers the next queued message.
///
/// # Safety
///
/// As for [`x86_hyperv_post_message`].
pub unsafe fn x86_hyperv_end_of_message(cap: CPtr) -> Result<(), Error> {
    // SAFETY: the caller's contract; an MSR write touches no memory of ours.
    let reply = unsafe { invoke(cap, label::X86HyperVEndOfMessage, &[], &[]) };
    Error::check(reply.label())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_is_connection_type_length_then_little_endian_words() {
        let payload: [u8; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        let (w, n) = post_message_words(4, 1, &payload).unwrap();
        assert_eq!(n, 5);
        assert_eq!(&w[..n], &[4, 1, 11, 0x0807_0605_0403_0201, 0x0b_0a09]);
        assert!(w[n..].iter().all(|&x| x == 0));
    }

    #[test]
    fn payload_limits() {
        assert_eq!(post_message_words(1, 1, &[]).unwrap().1, 3);
        let full = [0xffu8; MAX_POST_PAYLOAD];
        let (w, n) = post_message_words(u32::MAX, u32::MAX, &full).unwrap();
        assert_eq!(n, POST_WORDS);
        assert_eq!(w[0], 0xffff_ffff);
        assert!(post_message_words(1, 1, &[0; MAX_POST_PAYLOAD + 1]).is_none());
    }

    #[test]
    fn the_status_is_the_low_half_word_of_the_first_reply_word() {
        let ok = MessageInfo::new(0, 0, 0, 1);
        assert_eq!(status(ok, || 0x1_0012), Ok(0x12));
        assert_eq!(
            status(MessageInfo::new(0, 0, 0, 0), || 0),
            Err(Error::Unknown(0))
        );
        // Label 4 is seL4_RangeError.
        assert_eq!(
            status(MessageInfo::new(4, 0, 0, 0), || 0),
            Err(Error::RangeError)
        );
    }
}
