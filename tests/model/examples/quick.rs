use lifetime_model::*;
use stateright::{Checker, Model};
fn main() {
    let t = std::time::Instant::now();
    let c = LifetimeModel::new(Config::default())
        .checker()
        .threads(2)
        .spawn_bfs()
        .join();
    println!(
        "unique {} total {} depth {} in {:?}",
        c.unique_state_count(),
        c.state_count(),
        c.max_depth(),
        t.elapsed()
    );
    for (n, p) in c.discoveries() {
        println!("{n}: {} steps", p.into_actions().len());
    }
}
