//! Links with the image's linker script and generates this program's configuration from the
//! system description (`pd_build::pd_program`).
fn main() {
    pd_build::pd_program("../../../system.xml");
}
