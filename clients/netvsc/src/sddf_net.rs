//! netvsc as an sDDF network driver: received frames go to the client through sDDF's RX
//! queues, frames the client queues on its TX queues go out through netvsc's send sections.
//!
//! The driver is the filling side of the RX pair (it takes empty buffers from the free queue,
//! copies a received frame in and hands the buffer over on the active queue) and the draining
//! side of the TX pair (it takes filled buffers from the active queue, copies the frame into a
//! send section and gives the buffer straight back on the free queue: the host reads the
//! section, never the client's buffer). sDDF buffers are [`NET_BUFFER_SIZE`] bytes, so every
//! frame fits a send section and the GPA-direct path is not needed here.
//!
//! The data regions are addressed by offset (`NetDataRegion::offsets`): a driver that sits
//! behind an sDDF virtualiser would use I/O addresses instead; the queues check either.

use sddf::net::{NET_BUFFER_SIZE, NetBuffer, NetDrainer, NetFiller};
use sddf::{EnqueueError, PeerError, QueueMem};

use crate::device::{BufferMem, Error, Netvsc, Outbox};

/// What the bridge counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Frames handed to the client.
    pub rx_delivered: u64,
    /// Frames dropped because the client had no free buffer.
    pub rx_no_buffer: u64,
    /// Frames dropped because they exceed an sDDF buffer.
    pub rx_too_big: u64,
    /// Frames sent for the client.
    pub tx_sent: u64,
    /// Frames the device refused (too big, not ready): their buffers went back unsent.
    pub tx_refused: u64,
}

/// How a transmit pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStop {
    /// The client's TX active queue is empty.
    Drained,
    /// No send section or outbox room: flush the outbox, wait for completions, call again.
    DeviceBusy,
}

/// The bridge between netvsc and one client's sDDF queues.
#[derive(Debug, Default)]
pub struct NetBridge {
    /// A TX buffer taken from the client but not sent yet (the device was busy).
    held: Option<NetBuffer>,
    /// A free RX buffer taken for a frame that could not use it.
    spare_rx: Option<NetBuffer>,
    /// The counters.
    pub stats: BridgeStats,
}

impl NetBridge {
    /// A bridge with nothing held.
    pub const fn new() -> Self {
        Self {
            held: None,
            spare_rx: None,
            stats: BridgeStats {
                rx_delivered: 0,
                rx_no_buffer: 0,
                rx_too_big: 0,
                tx_sent: 0,
                tx_refused: 0,
            },
        }
    }

    /// Hands `frame` (from a netvsc `Event::Frame`) to the client: into its next free RX buffer
    /// in `data`, then onto the active queue. Whether the client must be notified now.
    ///
    /// # Errors
    /// The client broke its queues ([`PeerError`]); the frame is dropped.
    pub fn deliver<M: QueueMem, D: BufferMem + ?Sized>(
        &mut self,
        rx: &mut NetFiller<M>,
        data: &mut D,
        frame: &[u8],
    ) -> Result<bool, PeerError> {
        if frame.len() > NET_BUFFER_SIZE as usize {
            self.stats.rx_too_big += 1;
            return Ok(false);
        }
        let buffer = match self.spare_rx.take() {
            Some(b) => b,
            None => match rx.free.dequeue()? {
                Some(b) => b,
                None => {
                    self.stats.rx_no_buffer += 1;
                    // Ask to be told when the client returns buffers.
                    rx.free.request_signal();
                    return Ok(false);
                }
            },
        };
        let Ok(at) = usize::try_from(buffer.io_or_offset) else {
            return Ok(false);
        };
        if at
            .checked_add(frame.len())
            .is_none_or(|end| end > data.size())
        {
            // The queue checked the buffer against the region; a smaller `data` is ours.
            self.spare_rx = Some(buffer);
            return Ok(false);
        }
        data.write(at, frame);
        let filled = NetBuffer {
            // frame.len() <= NET_BUFFER_SIZE.
            len: frame.len() as u16,
            ..buffer
        };
        match rx.active.enqueue(filled) {
            Ok(()) => {}
            Err(EnqueueError::Peer(e)) => return Err(e),
            // The active queue holds as many as the free queue had: full or invalid means a
            // buffer of ours; keep it for the next frame.
            Err(_) => {
                self.spare_rx = Some(buffer);
                return Ok(false);
            }
        }
        self.stats.rx_delivered += 1;
        Ok(rx.active.require_signal())
    }

    /// Sends what the client queued on its TX active queue, copying each frame from `data` into
    /// a netvsc send section (`send_buf`) and queueing the NVSP message in `out`; each buffer
    /// goes back on the TX free queue as soon as its frame is copied. Stops when the queue is
    /// empty or the device has no section or outbox room. Returns why it stopped and whether
    /// the client must be notified (buffers came back).
    ///
    /// # Errors
    /// The client broke its queues ([`PeerError`]).
    pub fn transmit<M: QueueMem, D: BufferMem + ?Sized, S: BufferMem + ?Sized>(
        &mut self,
        tx: &mut NetDrainer<M>,
        data: &D,
        dev: &mut Netvsc,
        send_buf: &mut S,
        out: &mut Outbox,
    ) -> Result<(TxStop, bool), PeerError> {
        let mut returned = false;
        let mut frame = [0u8; NET_BUFFER_SIZE as usize];
        let stop = loop {
            let buffer = match self.held.take() {
                Some(b) => b,
                None => match tx.active.dequeue()? {
                    Some(b) => b,
                    None => break TxStop::Drained,
                },
            };
            let len = usize::from(buffer.len);
            let at = usize::try_from(buffer.io_or_offset).unwrap_or(usize::MAX);
            let sent = if at.checked_add(len).is_some_and(|end| end <= data.size()) {
                data.read(at, &mut frame[..len]);
                dev.send_frame(&frame[..len], send_buf, out)
            } else {
                Err(Error::FrameTooBig(len))
            };
            match sent {
                Ok(_) => self.stats.tx_sent += 1,
                Err(Error::NoSection | Error::OutboxFull) => {
                    self.held = Some(buffer);
                    break TxStop::DeviceBusy;
                }
                Err(_) => self.stats.tx_refused += 1,
            }
            let empty = NetBuffer { len: 0, ..buffer };
            match tx.free.enqueue(empty) {
                Ok(()) => returned = true,
                Err(EnqueueError::Peer(e)) => return Err(e),
                // The free queue has room for every buffer of the pair.
                Err(_) => {}
            }
        };
        Ok((stop, returned && tx.free.require_signal()))
    }

    /// The device went away (rescind): a held TX buffer goes back to the client unsent. The
    /// caller tells its client the link is down.
    pub fn rescind<M: QueueMem>(&mut self, tx: &mut NetDrainer<M>) {
        if let Some(b) = self.held.take() {
            let _ = tx.free.enqueue(NetBuffer { len: 0, ..b });
        }
    }
}
