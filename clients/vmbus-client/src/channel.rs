//! An open channel: packets out through the outbound ring, packets in from the inbound ring, the
//! channel's status record checked before every ring access.

use vmbus_driver::control::{ChannelHandle, ChannelStatus, Request, Response, StatusRecord};
use vmbus_driver::ids::RelId;
use vmbus_driver::ring::{
    CommitOutcome, GpaRange, PacketType, RingError, RingMem, RingReader, RingWriter,
};

use crate::client::{call, close_handle, status};
use crate::env::ClientEnv;
use crate::error::ClientError;

/// A packet taken from the inbound ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Payload bytes copied into the caller's buffer. In-band payloads are padded to a multiple
    /// of 8 by the sender, and the padding is part of the payload on the wire; protocols carry
    /// their own lengths.
    pub len: usize,
    /// The packet's transaction id.
    pub transaction_id: u64,
    /// The packet's type.
    pub packet_type: PacketType,
    /// Whether the sender asked for a completion.
    pub completion_requested: bool,
    /// Bytes of extended descriptor between the packet's descriptor and its payload (a
    /// transfer-page packet's set id and ranges, a GPA-direct packet's ranges); copied into the
    /// caller's buffer by [`Channel::recv_with_ext`], 0 for an in-band packet.
    pub ext_len: usize,
}

/// Traffic counters of one channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounters {
    /// Packets written to the outbound ring.
    pub sent: u64,
    /// Packets taken from the inbound ring.
    pub received: u64,
    /// Signal requests made to the driver (the ring said the host must be woken).
    pub signals: u64,
}

/// An open VMBus channel of this client.
///
/// Every operation first reads the channel's status record: once the driver has marked the
/// channel gone (rescind, close, teardown after a fault) the operation fails with
/// [`ClientError::ChannelGone`] without touching the ring pages, which are no longer mapped.
#[derive(Debug)]
pub struct Channel<M: RingMem> {
    handle: ChannelHandle,
    writer: RingWriter<M>,
    reader: RingReader<M>,
    next_tid: u64,
    events_seen: u32,
    counters: ChannelCounters,
}

impl<M: RingMem> Channel<M> {
    pub(crate) fn new(
        handle: ChannelHandle,
        writer: RingWriter<M>,
        reader: RingReader<M>,
        events_seen: u32,
    ) -> Self {
        Self {
            handle,
            writer,
            reader,
            next_tid: 1,
            events_seen,
            counters: ChannelCounters::default(),
        }
    }

    /// The channel's handle (slot, relid, generation).
    #[must_use]
    pub const fn handle(&self) -> ChannelHandle {
        self.handle
    }

    /// The channel's relid.
    #[must_use]
    pub const fn relid(&self) -> RelId {
        self.handle.relid
    }

    /// Traffic counters.
    #[must_use]
    pub const fn counters(&self) -> ChannelCounters {
        self.counters
    }

    /// Reads the status record and checks that it still describes this channel, open.
    ///
    /// # Errors
    /// [`ClientError::ChannelGone`] when the record names another generation or a state other
    /// than `Open`.
    pub fn check_open<E: ClientEnv<Mem = M>>(
        &self,
        env: &mut E,
    ) -> Result<StatusRecord, ClientError> {
        let rec = status(env, self.handle.slot)?;
        if rec.generation != self.handle.generation || rec.state != ChannelStatus::Open {
            return Err(ClientError::ChannelGone);
        }
        Ok(rec)
    }

    /// Host events delivered for this channel since the last call (the driver counts them in
    /// the status record).
    ///
    /// # Errors
    /// [`ClientError::ChannelGone`].
    pub fn take_events<E: ClientEnv<Mem = M>>(&mut self, env: &mut E) -> Result<u32, ClientError> {
        let rec = self.check_open(env)?;
        let new = rec.event_count.wrapping_sub(self.events_seen);
        self.events_seen = rec.event_count;
        Ok(new)
    }

    /// Sends `payload` as an in-band data packet without a completion request.
    ///
    /// # Errors
    /// As [`Channel::send_packet`].
    pub fn send<E: ClientEnv<Mem = M>>(
        &mut self,
        env: &mut E,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        let tid = self.next_tid;
        self.next_tid = self.next_tid.wrapping_add(1);
        self.send_packet(env, tid, false, payload)
    }

    /// Sends `payload` as an in-band data packet with transaction id `transaction_id`, and asks the
    /// driver to signal the host when the ring writer says the host must be woken
    /// (docs/protocol.md#producer-when-to-signal).
    ///
    /// # Errors
    /// [`ClientError::ChannelGone`], [`ClientError::Ring`] (`Full`: try again after the host
    /// consumed; `TooBig`; `Corrupt`: the host broke the ring), or the driver's refusal of the
    /// signal.
    pub fn send_packet<E: ClientEnv<Mem = M>>(
        &mut self,
        env: &mut E,
        transaction_id: u64,
        completion_requested: bool,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        self.check_open(env)?;
        let mut batch = self.writer.batch()?;
        batch.write_inband(transaction_id, completion_requested, payload)?;
        let outcome = batch.commit();
        self.finish_send(env, outcome)
    }

    /// Sends a completion packet (type 0xB) for the host's request `transaction_id` (netvsc
    /// completes each receive transfer this way).
    ///
    /// # Errors
    /// As [`Channel::send_packet`].
    pub fn send_completion<E: ClientEnv<Mem = M>>(
        &mut self,
        env: &mut E,
        transaction_id: u64,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        self.check_open(env)?;
        let mut batch = self.writer.batch()?;
        batch.write_completion(transaction_id, payload)?;
        let outcome = batch.commit();
        self.finish_send(env, outcome)
    }

    /// Sends a GPA-direct packet (type 9): `ranges` name guest pages the host reads or writes
    /// directly (storvsc's data buffers, netvsc's frames too big for a send section), then the
    /// in-band `payload`.
    ///
    /// # Errors
    /// As [`Channel::send_packet`]; [`RingError::BadRange`] inside [`ClientError::Ring`] for an
    /// empty range list or a malformed range.
    pub fn send_gpa_direct<E: ClientEnv<Mem = M>>(
        &mut self,
        env: &mut E,
        transaction_id: u64,
        completion_requested: bool,
        ranges: &[GpaRange<'_>],
        payload: &[u8],
    ) -> Result<(), ClientError> {
        self.check_open(env)?;
        let mut batch = self.writer.batch()?;
        batch.write_gpa_direct(transaction_id, completion_requested, ranges, payload)?;
        let outcome = batch.commit();
        self.finish_send(env, outcome)
    }

    fn finish_send<E: ClientEnv<Mem = M>>(
        &mut self,
        env: &mut E,
        outcome: CommitOutcome,
    ) -> Result<(), ClientError> {
        self.counters.sent += u64::from(outcome.packets);
        if outcome.signal {
            self.signal(env)?;
        }
        Ok(())
    }

    /// Takes the next packet from the inbound ring into `buf`: `Ok(None)` when the ring is
    /// empty.
    ///
    /// # Errors
    /// [`ClientError::ChannelGone`], [`ClientError::BufferTooSmall`] (the packet stays),
    /// [`ClientError::Ring`] with `Corrupt` when the host wrote an invalid packet.
    pub fn recv<E: ClientEnv<Mem = M>>(
        &mut self,
        env: &mut E,
        buf: &mut [u8],
    ) -> Result<Option<Received>, ClientError> {
        self.recv_with_ext(env, buf, &mut [])
    }

    /// As [`Channel::recv`], and copies the packet's extended descriptor into `ext` (a
    /// transfer-page packet's set id and ranges, which netvsc's receive path reads). With an
    /// empty `ext` the descriptor is skipped.
    ///
    /// # Errors
    /// As [`Channel::recv`]; [`ClientError::BufferTooSmall`] also when a non-empty `ext` cannot
    /// hold the descriptor (the packet stays).
    pub fn recv_with_ext<E: ClientEnv<Mem = M>>(
        &mut self,
        env: &mut E,
        buf: &mut [u8],
        ext: &mut [u8],
    ) -> Result<Option<Received>, ClientError> {
        self.check_open(env)?;
        let mut batch = match self.reader.batch() {
            Ok(b) => b,
            Err(RingError::Empty) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let received = {
            let Some(p) = batch.next_packet()? else {
                return Ok(None);
            };
            let len = p.payload_len();
            let Some(dest) = buf.get_mut(..len) else {
                return Err(ClientError::BufferTooSmall { needed: len });
            };
            let ext_len = p.ext_len();
            if !ext.is_empty() {
                let Some(ext_dest) = ext.get_mut(..ext_len) else {
                    return Err(ClientError::BufferTooSmall { needed: ext_len });
                };
                p.read_ext(0, ext_dest)?;
            }
            p.read_payload(0, dest)?;
            Received {
                len,
                transaction_id: p.transaction_id(),
                packet_type: p.packet_type(),
                completion_requested: p.completion_requested(),
                ext_len,
            }
        };
        let outcome = batch.commit()?;
        self.counters.received += u64::from(outcome.packets);
        if outcome.signal {
            // The host waits for space in the inbound ring and we just freed enough
            // (docs/protocol.md#consumer-when-to-signal).
            self.signal(env)?;
        }
        Ok(Some(received))
    }

    fn signal<E: ClientEnv<Mem = M>>(&mut self, env: &mut E) -> Result<(), ClientError> {
        self.counters.signals += 1;
        match call(
            env,
            &Request::Signal {
                handle: self.handle,
            },
        )? {
            Response::Signalled { .. } => Ok(()),
            Response::Error(e) => Err(e.into()),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    /// Closes the channel: the driver unmaps its rings and tells the host.
    ///
    /// # Errors
    /// [`ClientError::ChannelGone`] when the channel was already gone (nothing left to close),
    /// or the driver's refusal.
    pub fn close<E: ClientEnv<Mem = M>>(self, env: &mut E) -> Result<(), ClientError> {
        close_handle(env, self.handle)
    }
}
