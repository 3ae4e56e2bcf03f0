//! The invariant monitor itself: guest messages that break the invariants of
//! docs/lifetime.md#what-is-checked, posted straight to the host as if the driver had sent them,
//! are reported. (Without this, a monitor that never fires would make every race test pass.)

use hv_host::{Connection, DeviceKind};
use vmbus_driver::hv::HvMessageType;
use vmbus_driver::msg::{
    ChannelMessage, CloseChannel, GpadlTeardown, MAX_PAYLOAD, RelIdReleased, encode,
};

use crate::common::{self, Rig, open_echo};

fn post_as_guest(rig: &mut Rig, msg: &ChannelMessage) {
    let Connection::Connected { msg_conn, .. } = rig.w.host().connection() else {
        panic!("not connected");
    };
    let mut buf = [0u8; MAX_PAYLOAD];
    let n = encode(msg, &mut buf).expect("encodes");
    let status = rig
        .w
        .host_mut()
        .post_message(msg_conn, HvMessageType::VMBUS, &buf[..n]);
    assert!(status.is_success());
}

#[test]
fn monitor_reports_a_release_without_rescind_a_double_teardown_and_a_stale_relid() {
    let mut rig = Rig::booted(&[]);
    let (a, class) = common::client(&rig.w, "heartbeat");
    let (relid, _ch) = open_echo(&mut rig, a, class, 1, DeviceKind::Echo);
    let gpadl = rig.w.host().channel(relid).unwrap().ring_gpadl.unwrap();
    rig.step();
    assert!(rig.mon.violations.is_empty(), "{:?}", rig.mon.violations);

    post_as_guest(
        &mut rig,
        &ChannelMessage::RelIdReleased(RelIdReleased { child_relid: relid }),
    );
    let teardown = ChannelMessage::GpadlTeardown(GpadlTeardown {
        child_relid: relid,
        gpadl,
    });
    post_as_guest(&mut rig, &teardown);
    post_as_guest(&mut rig, &teardown);
    rig.phase_step();
    let v = rig.mon.violations.join("\n");
    assert!(v.contains("answers no rescind"), "{v}");
    assert!(v.contains("torn down twice"), "{v}");

    // A rescind answered, then a message naming the released relid.
    rig.mon.violations.clear();
    rig.w.host_mut().rescind(relid).unwrap();
    rig.settle(300, "selftest");
    rig.mon.violations.clear();
    post_as_guest(
        &mut rig,
        &ChannelMessage::CloseChannel(CloseChannel { child_relid: relid }),
    );
    rig.phase_step();
    let v = rig.mon.violations.join("\n");
    assert!(
        v.contains(&format!("naming {relid} after its release")),
        "{v}"
    );
}
