//! Builds the PD programs and the root task (the separate workspace `components/pds`).

use std::path::{Path, PathBuf};

/// What was built.
#[derive(Debug)]
pub struct Built {
    /// The root task ELF, PD programs embedded.
    pub roottask: PathBuf,
    /// Names of the embedded PD programs.
    pub programs: Vec<String>,
}

/// Builds everything.
pub fn build(_root: &Path, _out: &Path) -> Result<Built, String> {
    Err("PD programs: not built yet".into())
}
