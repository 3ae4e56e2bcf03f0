use lifetime_model::abstraction::abstract_model;
use lifetime_model::conformance::{Implementation, reference::ModelImplementation};
use lifetime_model::host::Reply;
use lifetime_model::*;
fn main() {
    let m = LifetimeModel::new(Config {
        symmetry: false,
        ..Config::default()
    });
    let mut imp = ModelImplementation::new(&m, Variant::RevokeAfterTeardown);
    let mut s = m.init();
    for a in [
        Action::HostOffer(0),
        Action::DriverMessage,
        Action::ClientOpen(0, 0),
        Action::HostReceive(Reply::Answer),
        Action::DriverMessage,
        Action::HostReceive(Reply::Answer),
        Action::DriverMessage,
        Action::ClientClose(0, 0),
    ] {
        let n = m.step(&s, a).unwrap_or(s);
        imp.apply(a, &s, &n).unwrap();
        s = n;
        println!(
            "{a}\n  model {:?}\n  impl  {:?}",
            abstract_model(&m, &s),
            imp.abstract_state()
        );
    }
}
