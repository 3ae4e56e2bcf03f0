//! Text reports for tests and the system simulation (feature `std`): the message log, the channel
//! table and the counters as readable lines.

extern crate std;

use std::fmt::Write;
use std::string::String;

use crate::host::Host;

impl Host {
    /// The kept message log, one line per message, oldest first.
    pub fn format_log(&self) -> String {
        let mut s = String::new();
        for r in self.log().iter() {
            let _ = writeln!(s, "{r}");
        }
        s
    }

    /// The channel table: relid, state, class, sub-channel index, connection id, packets.
    pub fn format_channels(&self) -> String {
        let mut s = String::new();
        for c in self.channels() {
            let _ = writeln!(
                s,
                "{} {:?} class={} sub={} {} in={} out={} to_guest={} broken={}",
                c.relid,
                c.state,
                c.class,
                c.sub_channel_index,
                c.connection_id,
                c.stats.packets_in,
                c.stats.packets_out,
                c.stats.signals_to_guest,
                c.broken
            );
        }
        s
    }

    /// Counters and the guest errors kept.
    pub fn format_summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{:?}", self.counters());
        let _ = writeln!(s, "{:?}", self.synic().stats());
        for e in self.errors().iter() {
            let _ = writeln!(s, "guest error: {e}");
        }
        s
    }
}

impl Host {
    /// The integration-service and Dynamic Memory trace, one line per message, oldest first.
    pub fn format_trace(&self) -> String {
        let mut s = String::new();
        for r in self.trace().iter() {
            let _ = writeln!(s, "{r}");
        }
        s
    }
}
