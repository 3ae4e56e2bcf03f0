//! The bus's life as the driver runs it: start, the handshake's replies, and unload (every
//! channel through the teardown path, then UNLOAD), over the `Connection` and the channel
//! table.

use log::info;

use crate::hv::Hypervisor;
use crate::kernel::Kernel;
use crate::msg::VersionResponse;
use crate::version::Version;

use super::channels::ChannelTable;
use super::connection::{ConnectionInfo, UnloadStart};
use super::{Driver, TeardownReason, UnloadEnd};

impl Driver {
    /// The connection state.
    pub fn connection(&self) -> ConnectionInfo {
        self.conn.info()
    }

    /// The negotiated version, once a version was accepted.
    pub fn version(&self) -> Option<Version> {
        self.conn.version()
    }

    /// Starts the handshake: INITIATE_CONTACT for the newest allowed version, without monitor
    /// pages (every guest-to-host signal a hypercall; [`Driver::start_monitored`] passes them).
    /// Does nothing unless disconnected or failed.
    pub fn start<H: Hypervisor + ?Sized>(&mut self, hv: &mut H, now: u64) {
        let deadline = self.deadline(now);
        self.conn
            .start(hv, &mut self.stats, self.target_vp, deadline, (0, 0));
    }

    /// VERSION_RESPONSE.
    pub(crate) fn on_version_response<H: Hypervisor + ?Sized>(
        &mut self,
        hv: &mut H,
        r: &VersionResponse,
        now: u64,
    ) {
        let deadline = self.deadline(now);
        let awaited =
            self.conn
                .on_version_response(hv, &mut self.stats, r, self.target_vp, deadline);
        if !awaited {
            self.hostile_unexpected("VERSION_RESPONSE outside the handshake");
        }
    }

    /// ALLOFFERS_DELIVERED.
    pub(crate) fn on_all_offers(&mut self) {
        if !self.conn.on_all_offers() {
            self.hostile_unexpected("ALLOFFERS_DELIVERED outside REQUESTOFFERS");
        }
    }

    /// Starts bus unload: every channel goes through the teardown path, then UNLOAD is sent and
    /// UNLOAD_RESPONSE awaited ([`Driver::on_tick`] bounds the wait).
    pub fn unload<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        now: u64,
    ) {
        match self.conn.begin_unload() {
            UnloadStart::TearDown => {}
            UnloadStart::Finish => return self.finish_unload(k, UnloadEnd::NotSent),
            UnloadStart::Nothing => return,
        }
        info!(
            "unloading: tearing down {} channels",
            self.channels.opened_count()
        );
        for relid in ChannelTable::relids() {
            self.begin_teardown(hv, k, relid, TeardownReason::Unload, now);
        }
        self.check_unload(hv, k, now);
    }

    /// Sends UNLOAD once every teardown finished.
    pub(crate) fn check_unload<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        now: u64,
    ) {
        if !self.conn.awaits_teardowns() || self.channels.opened_count() != 0 {
            return;
        }
        let deadline = self.deadline(now);
        if !self.conn.send_unload(hv, &mut self.stats, deadline) {
            self.finish_unload(k, UnloadEnd::NotSent);
        }
    }

    /// UNLOAD_RESPONSE.
    pub(crate) fn on_unload_response<K: Kernel + ?Sized>(&mut self, k: &mut K) {
        if self.conn.on_unload_response() {
            self.finish_unload(k, UnloadEnd::Answered);
        } else {
            self.hostile_unexpected("UNLOAD_RESPONSE without UNLOAD");
        }
    }

    /// The host forgot every offer (or the unload ended as `end` says): clear the table
    /// (generations move on); a stop under way is complete. Only an answered UNLOAD returns the
    /// monitor pages: otherwise the host may still hold them, and the next start reuses them.
    fn finish_unload<K: Kernel + ?Sized>(&mut self, k: &mut K, end: UnloadEnd) {
        if end == UnloadEnd::Answered {
            self.release_monitor_pages(k);
        }
        self.channels.forget_all();
        self.conn.finish_unload();
        self.end_stop(end);
    }

    /// Connection-level timeouts.
    pub(crate) fn connection_tick<K: Kernel + ?Sized>(&mut self, k: &mut K, now: u64) {
        if self.conn.tick(now, &mut self.stats) {
            self.finish_unload(k, UnloadEnd::TimedOut);
        }
    }

    /// Whether clients may open channels (offers are being or have been delivered).
    pub(crate) fn is_connected(&self) -> bool {
        self.conn.is_connected()
    }
}
