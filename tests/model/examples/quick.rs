use lifetime_model::*;
use stateright::{Checker, Model};
fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let cfg = Config {
        channels: a[0],
        clients: a[1],
        pages: a[2],
        offers_per_relid: a[3] as u8,
        host_silent_after_rescind: a[4] & 1 != 0,
        host_refuses_open: a[4] & 2 != 0,
        teardown_timeouts: a[4] & 4 != 0,
        unload: a[4] & 8 != 0,
        ..Config::default()
    };
    println!("size {}", std::mem::size_of::<State>());
    let t = std::time::Instant::now();
    let c = LifetimeModel::new(cfg)
        .checker()
        .threads(2)
        .target_state_count(a[5])
        .spawn_bfs()
        .join();
    println!(
        "unique {} total {} depth {} in {:?}",
        c.unique_state_count(),
        c.state_count(),
        c.max_depth(),
        t.elapsed()
    );
    let mut d: Vec<_> = c
        .discoveries()
        .into_iter()
        .map(|(n, p)| (n, p.into_actions().len()))
        .collect();
    d.sort();
    for (n, l) in d {
        println!("  {n}: {l} steps");
    }
}
