//! What the main job prints: the live channel table and the final summary.

use std::fmt::Write as _;

use sim_system::World;
use vmbus_driver::driver::ChannelState;

use super::devices::class_label;
use super::report::Report;

/// Guest errors of the host's log shown in the summary (the last ones).
const HOST_ERRORS_SHOWN: usize = 8;

/// A channel state in a few letters.
fn state_label(s: ChannelState) -> String {
    match s {
        ChannelState::Offered => "offered".into(),
        ChannelState::GpadlPending => "gpadl-pending".into(),
        ChannelState::OpenPending => "open-pending".into(),
        ChannelState::Open => "open".into(),
        ChannelState::TearingDown(r) => format!("teardown({r:?})").to_lowercase(),
    }
}

/// The channel table at this moment: one row per relid the driver knows.
pub(crate) fn channel_table(w: &World, moment: &str) -> String {
    let mut s = String::new();
    let conn = w.driver().connection();
    let _ = writeln!(
        s,
        "-- {moment} (tick {}): connection {}{}, {} channels, {} open, pool {} free --",
        w.now(),
        conn.state,
        conn.version.map(|v| format!(" {v}")).unwrap_or_default(),
        w.driver_channels().len(),
        w.driver().open_count(),
        w.pool_free(),
    );
    let _ = writeln!(
        s,
        "{:>5}  {:<10} {:>3}  {:<16} {:<10} {:>5} {:>4} {:>7} {:>7} {:>8} {:>8}",
        "relid",
        "class",
        "sub",
        "state",
        "client",
        "pages",
        "gen",
        "events",
        "signals",
        "pkts in",
        "pkts out"
    );
    for c in w.driver_channels() {
        let client = c
            .client
            .and_then(|id| w.instance().client(id))
            .map_or_else(|| "-".to_string(), |i| i.name.clone());
        let host = w.host().channel(c.relid).map(|h| h.stats);
        let state = format!(
            "{}{}{}",
            state_label(c.state),
            if c.open_unresolved { "?" } else { "" },
            if c.rescinded { "*" } else { "" }
        );
        let _ = writeln!(
            s,
            "{:>5}  {:<10} {:>3}  {:<16} {:<10} {:>5} {:>4} {:>7} {:>7} {:>8} {:>8}",
            c.relid.0,
            class_label(&c.class),
            c.sub_channel_index,
            state,
            client,
            c.pages,
            c.generation,
            c.events,
            c.signals,
            host.map_or(0, |h| h.packets_in),
            host.map_or(0, |h| h.packets_out),
        );
    }
    if w.driver_channels().iter().any(|c| c.open_unresolved) {
        let _ = writeln!(
            s,
            "(? the host never answered an OPENCHANNEL: not openable until it does or rescinds)"
        );
    }
    if w.driver_channels().iter().any(|c| c.rescinded) {
        let _ = writeln!(
            s,
            "(* rescinded by the host; RELID_RELEASED follows the teardown)"
        );
    }
    s
}

/// The final summary.
pub(crate) fn summary(r: &Report) -> String {
    let mut s = String::new();
    let d = &r.driver;
    let h = &r.host;
    let k = &r.kernel;
    let c = &r.clients;
    let _ = writeln!(
        s,
        "==== summary: scenario {}, {} steps ====",
        r.scenario, r.steps
    );
    let _ = writeln!(
        s,
        "handshake: version {}, connection {}, {} versions refused",
        r.version
            .map_or_else(|| "none".to_string(), |v| v.to_string()),
        r.connection,
        r.versions_refused
    );
    let _ = writeln!(
        s,
        "channels:  offers {}  opens {} (failed {})  rescinds {}  teardowns {}/{} completed  relids released {}  open now {}",
        d.offers,
        d.opens,
        d.open_failures,
        d.rescinds,
        d.teardowns_completed,
        d.teardowns,
        d.relids_released,
        r.open_now
    );
    let _ = writeln!(
        s,
        "traffic:   clients sent {} echoed {} mismatched {}; events delivered {} dropped stale {}; signals {} suppressed {}",
        c.sent,
        c.echoed,
        c.mismatches,
        d.events_delivered,
        d.events_dropped_stale,
        d.signals,
        d.signals_suppressed
    );
    let per_1000 = |n: u64| n as f64 * 1000.0 / r.packets_to_host.max(1) as f64;
    let _ = writeln!(
        s,
        "signals:   {} packets to the host; guest-to-host signals by hypercall {} ({:.1} per 1000 packets), by monitor page {} ({:.1} per 1000 packets); monitor connects {}, hostile monitor ids {}",
        r.packets_to_host,
        d.signals,
        per_1000(d.signals),
        d.monitor_signals,
        per_1000(d.monitor_signals),
        d.monitor_connects,
        d.bad_monitor_ids
    );
    let _ = writeln!(
        s,
        "clients:   opens {} gone {} closed {} refused {} errors {}; faults {}",
        c.opens, c.gone, c.closed, c.refused, c.errors, r.faults
    );
    let _ = writeln!(
        s,
        "pool:      {} pages: {} free, {} in channels, {} quarantined, {} lent to the host, {} unaccounted; taken {} returned {}; balloon lent {} reclaimed {} (refused {})",
        r.pool_total,
        r.pool_free,
        r.pages_in_channels,
        r.quarantined,
        r.lent,
        r.unaccounted(),
        d.pages_taken,
        d.pages_returned,
        d.balloon_pages_lent,
        d.balloon_pages_reclaimed,
        d.balloon_reclaims_refused
    );
    let _ = writeln!(
        s,
        "quarantine: {} pages ever: {} unconfirmed teardown (of which {} released late), {} failed revoke, {} failed zero, {} refused return",
        d.quarantined_pages,
        d.quarantine_unconfirmed,
        d.quarantine_released_pages,
        d.quarantine_revoke_failed,
        d.quarantine_zero_failed,
        d.quarantine_return_failed
    );
    let _ = writeln!(
        s,
        "lifetime:  implied rescinds {} unresolved opens {}; client ring errors {}",
        d.implied_rescinds, d.unresolved_opens, d.client_corrupt_rings
    );
    let _ = writeln!(
        s,
        "driver:    interrupts {} messages {} hostile {} (malformed {}, relid out of range {}, duplicate offers {}, unknown rescinds {}, unknown gpadl {}, mismatched {}, unexpected {}) timeouts {} kernel errors {}",
        d.interrupts,
        d.messages,
        d.hostile,
        d.malformed,
        d.relid_out_of_range,
        d.duplicate_offers,
        d.unknown_rescinds,
        d.unknown_gpadl,
        d.mismatched_replies,
        d.unexpected_messages,
        d.timeouts,
        d.kernel_errors
    );
    let _ = writeln!(
        s,
        "host:      received {} sent {} guest errors {} hypercall failures {} spurious signals {} gpadls {}/{} torn down, {} dropped",
        h.messages_received,
        h.messages_sent,
        h.guest_errors,
        h.hypercall_failures,
        h.spurious_signals,
        h.gpadls_torn_down,
        h.gpadls_created,
        h.gpadls_dropped
    );
    let shown = r.host_errors.len().saturating_sub(HOST_ERRORS_SHOWN);
    if shown > 0 {
        let _ = writeln!(s, "  ({shown} earlier guest errors not shown)");
    }
    for e in &r.host_errors[shown..] {
        let _ = writeln!(s, "  host saw: {e}");
    }
    if let Some(n) = &r.network {
        let _ = writeln!(s, "{}", n.line());
    }
    if let Some(st) = &r.storage {
        let _ = writeln!(s, "{}", st.line());
    }
    s.push_str(&r.services.render());
    let _ = writeln!(
        s,
        "kernel:    copies {} mints {} maps {} unmaps {} revokes {} (caps {}) deletes {} signals {} irq acks {} faults {} errors {}",
        k.copies,
        k.mints,
        k.maps,
        k.unmaps,
        k.revokes,
        k.revoked_caps,
        k.deletes,
        k.signals,
        k.irq_acks,
        k.faults,
        k.errors
    );
    s
}
