//! Records the commit the bench is built from (SLUICE_COMMIT), so every
//! results file says what code produced it.
use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["describe", "--always", "--dirty", "--abbrev=12"]).unwrap_or_default();
    println!("cargo:rustc-env=SLUICE_COMMIT={commit}");
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = std::path::Path::new(&dir);
        for f in ["HEAD", "index"] {
            println!("cargo:rerun-if-changed={}", dir.join(f).display());
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
