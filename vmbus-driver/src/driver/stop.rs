//! The orderly stop a permitted client asks for (the shutdown integration service answering the
//! host's shut-down or restart request): every channel of every client goes through the unload
//! path (revoke the client mappings, tear down, then UNLOAD and UNLOAD_RESPONSE), and the driver
//! says when it is over, so the PD can report the stop to the system.

use log::{info, warn};

use crate::control::{ClientError, Response};
use crate::hv::Hypervisor;
use crate::ids::ClientId;
use crate::kernel::Kernel;

use super::clients::ClientIdx;
use super::{ConnectionState, Driver};

/// What the stop is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopKind {
    /// The host asked the guest to shut down.
    PowerOff,
    /// The host asked the guest to restart.
    Restart,
}

/// How the bus unload of a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnloadEnd {
    /// The host answered UNLOAD with UNLOAD_RESPONSE.
    Answered,
    /// UNLOAD_RESPONSE did not come within the reply timeout (`Driver::on_tick`).
    TimedOut,
    /// No UNLOAD was sent: the bus was not connected, the version has no UNLOAD, or the post
    /// failed.
    NotSent,
}

/// A stop, requested or done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StopInfo {
    /// Power off or restart.
    pub kind: StopKind,
    /// The client that asked (the first one, if several did).
    pub by: ClientId,
    /// How the unload ended; `None` while channels are still being closed or UNLOAD_RESPONSE
    /// is awaited.
    pub unload: Option<UnloadEnd>,
}

impl Driver {
    /// The stop requested, if any, done or not.
    pub fn stopping(&self) -> Option<StopInfo> {
        self.stop
    }

    /// The stop's kind once it is complete: every channel closed (client mappings revoked,
    /// teardowns finished) and the unload over. `None` while no stop was requested or it is
    /// still under way.
    pub fn stopped(&self) -> Option<StopKind> {
        self.stop.filter(|s| s.unload.is_some()).map(|s| s.kind)
    }

    /// Client `c` asks to stop the system.
    pub(crate) fn request_stop<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        c: ClientIdx,
        restart: bool,
        now: u64,
    ) -> Result<Response, ClientError> {
        let by = self.clients.id(c);
        if !self.clients.power(c) {
            warn!("{by} asked to stop the system without permission");
            return Err(ClientError::NotPermitted);
        }
        let kind = if restart {
            StopKind::Restart
        } else {
            StopKind::PowerOff
        };
        if let Some(s) = self.stop {
            // Harmless: the first request's stop goes on (or is over) unchanged.
            info!(
                "{by} asked to stop ({kind:?}) again; the stop asked by {} goes on",
                s.by
            );
            return Ok(Response::Stopping);
        }
        info!("{by} asks for an orderly stop ({kind:?}): closing every channel");
        self.stop = Some(StopInfo {
            kind,
            by,
            unload: None,
        });
        self.unload(hv, k, now);
        // Nothing was connected (or the connection had failed): there is nothing to close.
        if matches!(
            self.conn.state(),
            ConnectionState::Disconnected | ConnectionState::Failed
        ) {
            self.end_stop(UnloadEnd::NotSent);
        }
        Ok(Response::Stopping)
    }

    /// The unload is over: a stop under way is complete.
    pub(crate) fn end_stop(&mut self, end: UnloadEnd) {
        if let Some(s) = &mut self.stop
            && s.unload.is_none()
        {
            s.unload = Some(end);
            info!("orderly stop ({:?}) complete: unload {end:?}", s.kind);
        }
    }
}
