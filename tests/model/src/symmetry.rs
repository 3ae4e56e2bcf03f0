//! Client symmetry: clients are interchangeable, so a state and the same state with clients
//! renumbered behave alike. Exploring one representative per class shrinks the state space by
//! up to `clients!` without losing any behaviour up to renaming.

use crate::state::{NONE, State};

/// Renumbers clients by `perm` (client `c` becomes `perm[c]`).
fn permute(s: &State, perm: &[u8]) -> State {
    let mut n = *s;
    for (c, &to) in perm.iter().enumerate() {
        n.clients[usize::from(to)] = s.clients[c];
        n.kernel.maps[usize::from(to)] = s.kernel.maps[c];
    }
    for ch in n.drv.iter_mut() {
        if ch.client != NONE {
            ch.client = perm[usize::from(ch.client)];
        }
    }
    n
}

/// The least state (in `Ord` order) among all renumberings of the first `clients` clients.
pub fn canonical(s: &State, clients: usize) -> State {
    match clients {
        2 => (*s).min(permute(s, &[1, 0])),
        3 => [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ]
        .iter()
        .map(|p| permute(s, p))
        .min()
        .unwrap_or(*s),
        _ => *s,
    }
}
