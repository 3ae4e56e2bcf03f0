//! An independent check of our label numbering: the kernel's own build generates C headers with
//! its Python tool (`invocation_header_gen.py`); a small C program compiled against those headers
//! prints every label, and each must equal the number our generator gave it.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;

use super::tools;

/// Compares `ours` with the kernel's headers in `kbuild` (configured by `gen_dir`'s autoconf.h).
/// Returns how many labels agree.
pub fn labels(
    kbuild: &Path,
    gen_dir: &Path,
    work: &Path,
    ours: &[(String, u64)],
) -> Result<usize, String> {
    let mut c = String::from(
        "#include <autoconf.h>\n#include <api/invocation.h>\n#include <arch/api/sel4_invocation.h>\n#include <arch/api/invocation.h>\n#include <stdio.h>\nint main(void) {\n",
    );
    for (name, _) in ours {
        let _ = writeln!(c, "    printf(\"{name} %d\\n\", (int){name});");
    }
    c.push_str("    printf(\"COUNT %d\\n\", (int)nArchInvocationLabels);\n    return 0;\n}\n");
    let src = work.join("labels.c");
    let exe = work.join("labels");
    tools::write_if_changed(&src, &c)?;
    tools::run(
        Command::new("gcc")
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .arg("-I")
            .arg(kbuild)
            .arg("-I")
            .arg(gen_dir),
    )?;
    let out = tools::output(&mut Command::new(&exe))?;
    let mut agree = 0;
    for line in out.lines() {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let value: u64 = value
            .parse()
            .map_err(|_| format!("bad output line `{line}`"))?;
        if name == "COUNT" {
            let n = ours.len() as u64 + 1;
            if value != n {
                return Err(format!("the kernel has {value} labels, our generator {n}"));
            }
            continue;
        }
        match ours.iter().find(|(n, _)| n == name) {
            Some((_, v)) if *v == value => agree += 1,
            Some((_, v)) => return Err(format!("label {name}: kernel {value}, ours {v}")),
            None => return Err(format!("label {name} printed but not ours")),
        }
    }
    if agree != ours.len() {
        return Err(format!(
            "only {agree} of {} labels were compared",
            ours.len()
        ));
    }
    Ok(agree)
}
