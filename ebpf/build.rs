//! Builds the XDP program with clang and leaves the object in OUT_DIR, where
//! `src/lib.rs` embeds it.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = manifest.join("c/sluice_xdp.c");
    let obj = out.join("sluice_xdp.o");
    println!("cargo:rerun-if-changed=c/sluice_xdp.c");
    println!("cargo:rerun-if-changed=c/sluice_abi.h");
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"]);
    if let Some(triple) = multiarch_triple() {
        cmd.arg(format!("-I/usr/include/{triple}"));
    }
    cmd.arg("-c").arg(&src).arg("-o").arg(&obj);
    match cmd.output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!("{}", String::from_utf8_lossy(&o.stderr));
            panic!(
                "clang failed to build the XDP program {}: see the errors above \
                 (missing <bpf/bpf_helpers.h>? install libbpf-dev: `apt-get install libbpf-dev`)",
                src.display()
            );
        }
        Err(e) => panic!(
            "cannot run `{clang}` ({e}): the XDP program is built with clang. \
             Install it with `apt-get install clang llvm libbpf-dev` (or run scripts/setup.sh), \
             or point the CLANG environment variable at a clang binary."
        ),
    }
}

/// The Debian multiarch triple (`x86_64-linux-gnu`), whose include folder has
/// `asm/types.h` that the kernel headers need under `-target bpf`.
fn multiarch_triple() -> Option<String> {
    let o = Command::new("gcc").arg("-dumpmachine").output().ok()?;
    let t = String::from_utf8(o.stdout).ok()?.trim().to_string();
    (!t.is_empty()).then_some(t)
}
