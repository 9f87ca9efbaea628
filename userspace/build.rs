//! Embeds the eBPF object built by `cargo xtask build` (ebpf/ is a separate workspace built
//! for bpfel-unknown-none; see xtask).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=VZ_BPF_OBJECT");
    let obj = match std::env::var_os("VZ_BPF_OBJECT") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bpf/vz.bpf.o"),
    };
    println!("cargo:rerun-if-changed={}", obj.display());
    if !obj.is_file() {
        panic!("eBPF object {} is missing: build with `cargo xtask build` (or set VZ_BPF_OBJECT)", obj.display());
    }
    let obj = obj.canonicalize().unwrap_or(obj);
    println!("cargo:rustc-env=VZ_BPF_OBJECT={}", obj.display());
}
