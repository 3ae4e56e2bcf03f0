//! Buffers of an open channel beyond its rings: netvsc's receive and send buffers (described
//! to the host as GPADLs, whose ids the client sends in its NVSP messages) and storvsc's data
//! buffers (named by frame number in GPA-direct packets).
//!
//! The driver places a buffer in the channel's window slot after its rings and grants its
//! pages there; [`Buffer::window_page`] is its first page in the client's window, which a PD
//! reaches at `window base + window_page * 4096` (or through [`Channel::read_buffer`] and
//! [`Channel::write_buffer`], which check the channel's status record first). The buffer goes
//! with its channel: a close, rescind or fault revokes it with the rings.

use vmbus_driver::control::{BufferHandle, BufferInfo, Request, Response};
use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ids::GpadlId;
use vmbus_driver::ring::RingMem;

use crate::channel::Channel;
use crate::client::call;
use crate::env::ClientEnv;
use crate::error::ClientError;
use vmbus_driver::control::ClientError as Refusal;

/// A buffer granted into the client's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// The driver's handle of the buffer.
    pub id: BufferHandle,
    /// First page of the buffer in the client's window.
    pub window_page: usize,
    /// Pages of the buffer (consecutive window pages).
    pub pages: usize,
    /// The GPADL the host knows the buffer by, if one was asked for.
    pub gpadl: Option<GpadlId>,
}

impl Buffer {
    fn from_info(info: &BufferInfo) -> Buffer {
        Buffer {
            id: info.buffer,
            window_page: info.window_page as usize,
            pages: info.pages as usize,
            gpadl: info.gpadl,
        }
    }

    /// Bytes in the buffer.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    /// Whether the buffer has no pages (never, for one the driver granted).
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.pages == 0
    }
}

impl<M: RingMem> Channel<M> {
    /// Allocates a buffer of `pages` pages for this channel, described to the host as a GPADL
    /// of the channel if `gpadl`, and waits (like [`crate::open`]) until the driver has granted
    /// it into the window.
    ///
    /// # Errors
    /// [`ClientError::ChannelGone`]; the driver's refusal (`BufferLimit`, `BadBufferSize`,
    /// `WindowFull`, `NoResources`, ...); [`ClientError::BufferFailed`] when the host refused
    /// the GPADL or it never came; [`ClientError::NoCompletion`] (after freeing the buffer)
    /// when the environment reports that no notification will come.
    pub fn alloc_buffer<E: ClientEnv<Mem = M>>(
        &self,
        env: &mut E,
        pages: u32,
        gpadl: bool,
    ) -> Result<Buffer, ClientError> {
        self.check_open(env)?;
        let handle = self.handle();
        let buffer = match call(
            env,
            &Request::AllocBuffer {
                handle,
                pages,
                gpadl,
            },
        )? {
            Response::Buffer(info) => return Ok(Buffer::from_info(&info)),
            Response::BufferCreating { buffer } => buffer,
            Response::Error(e) => return Err(e.into()),
            _ => return Err(ClientError::UnexpectedResponse),
        };
        loop {
            match call(env, &Request::BufferStatus { handle, buffer })? {
                Response::Buffer(info) if info.buffer == buffer => {
                    return Ok(Buffer::from_info(&info));
                }
                Response::BufferCreating { buffer: b } if b == buffer => {}
                Response::Error(Refusal::BufferGone) => {
                    self.check_open(env)?;
                    return Err(ClientError::BufferFailed);
                }
                Response::Error(e) => return Err(e.into()),
                _ => return Err(ClientError::UnexpectedResponse),
            }
            if env.wait_notification().is_none() {
                // Best effort: the driver may have completed or dropped it meanwhile.
                let _ = call(env, &Request::FreeBuffer { handle, buffer });
                return Err(ClientError::NoCompletion);
            }
        }
    }

    /// Copies the guest frame numbers of `buffer`'s pages from page `start` on into `out`
    /// (for GPA-direct descriptors); returns how many it copied (fewer than `out.len()` only
    /// at the buffer's end).
    ///
    /// # Errors
    /// [`ClientError::ChannelGone`]; the driver's refusal (`BufferGone`, `BufferNotReady`,
    /// `BadBufferSize` for a `start` past the end); [`ClientError::UnexpectedResponse`] for an
    /// answer that does not fit the request.
    pub fn buffer_frames<E: ClientEnv<Mem = M>>(
        &self,
        env: &mut E,
        buffer: &Buffer,
        start: usize,
        out: &mut [u64],
    ) -> Result<usize, ClientError> {
        self.check_open(env)?;
        let mut done = 0;
        while done < out.len() && start + done < buffer.pages {
            let at = u32::try_from(start + done).map_err(|_| ClientError::UnexpectedResponse)?;
            let req = Request::BufferFrames {
                handle: self.handle(),
                buffer: buffer.id,
                start: at,
            };
            let frames = match call(env, &req)? {
                Response::Frames { start, frames, .. } if start == at && !frames.is_empty() => {
                    frames
                }
                Response::Error(e) => return Err(e.into()),
                _ => return Err(ClientError::UnexpectedResponse),
            };
            let n = frames.len().min(out.len() - done);
            out[done..done + n].copy_from_slice(&frames[..n]);
            done += n;
        }
        Ok(done)
    }

    /// Frees `buffer`: when this returns the client's mappings of it are gone; the host's
    /// GPADL is torn down by the driver. A client that told the host about the buffer (NVSP)
    /// revokes it there first.
    ///
    /// # Errors
    /// [`ClientError::ChannelGone`], or the driver's refusal (`BufferGone`).
    pub fn free_buffer<E: ClientEnv<Mem = M>>(
        &self,
        env: &mut E,
        buffer: Buffer,
    ) -> Result<(), ClientError> {
        match call(
            env,
            &Request::FreeBuffer {
                handle: self.handle(),
                buffer: buffer.id,
            },
        )? {
            Response::BufferFreed => Ok(()),
            Response::Error(e) => Err(e.into()),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    /// Copies bytes at `offset` of `buffer` into `buf`, through the window, after checking
    /// that the channel (and so the buffer) is still there.
    ///
    /// # Errors
    /// [`ClientError::ChannelGone`], [`ClientError::OutOfBuffer`],
    /// [`ClientError::NoWindowAccess`] for an environment without window access.
    pub fn read_buffer<E: ClientEnv<Mem = M>>(
        &self,
        env: &mut E,
        buffer: &Buffer,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), ClientError> {
        self.check_open(env)?;
        check_range(buffer, offset, buf.len())?;
        if env.window_read(buffer.window_page, offset, buf) {
            Ok(())
        } else {
            Err(ClientError::NoWindowAccess)
        }
    }

    /// Copies `data` to `offset` of `buffer`, through the window, after checking that the
    /// channel (and so the buffer) is still there.
    ///
    /// # Errors
    /// As [`Channel::read_buffer`].
    pub fn write_buffer<E: ClientEnv<Mem = M>>(
        &self,
        env: &mut E,
        buffer: &Buffer,
        offset: usize,
        data: &[u8],
    ) -> Result<(), ClientError> {
        self.check_open(env)?;
        check_range(buffer, offset, data.len())?;
        if env.window_write(buffer.window_page, offset, data) {
            Ok(())
        } else {
            Err(ClientError::NoWindowAccess)
        }
    }
}

fn check_range(buffer: &Buffer, offset: usize, len: usize) -> Result<(), ClientError> {
    match offset.checked_add(len) {
        Some(end) if end <= buffer.len() => Ok(()),
        _ => Err(ClientError::OutOfBuffer),
    }
}
