//! Developer and CI driver: `cargo xtask setup|build|test|bench|run`.
//!
//! Every command installs what it needs first (idempotently, quietly), so a fresh machine
//! needs only `cargo xtask test` or `cargo xtask run`.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

mod layout;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "xtask", about = "Build, test and benchmark vzbpf")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what a fresh machine lacks: Debian packages and bpf-linker. Idempotent; a
    /// second run takes seconds and uses no network.
    Setup,
    /// Build the eBPF object, then the userspace binaries that embed it.
    Build {
        /// Debug userspace build (the eBPF object is always optimised).
        #[arg(long)]
        debug: bool,
    },
    /// Lint (rustfmt, clippy -D warnings, both workspaces), unit tests (no root), then the
    /// integration tests against the host kernel (root) and the VM lane.
    Test,
    /// The lint step of `test` alone.
    Lint,
    /// Benchmarks; prints ratios from one run.
    Bench,
    /// The VM lane alone: what this host's kernel lacks, tested on a stock Debian kernel
    /// under qemu (part of `test`).
    Vm,
    /// The main job: install the tools, create and start VE 101 from the default template,
    /// show it with vzlist and its beancounters.
    Run,
}

/// How the eBPF crate gets its `core` for bpfel-unknown-none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BpfToolchain {
    /// Debian's rustc-web with the prebuilt BPF core (libstd-rust-web-dev-bpf).
    Debian,
    /// A rustup nightly with rust-src (`-Z build-std=core`).
    Nightly,
}

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// Needed on every path: LLVM for bpf-linker, and the tools the tests and demo call.
const BASE_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "bpftool",
    "iproute2",
    "util-linux",
    "procps",
    "busybox-static",
    "rsync",
    "debootstrap",
    "zstd",
    // vzctl set --userpasswd hashes with `openssl passwd -6`.
    "openssl",
    // vzmigrate and its tests: the ssh client (the server is unpacked for the tests only).
    "openssh-client",
    // The man pages the main job installs are read with man(1) (and tested so).
    "man-db",
    // The numiptent tests write rules into a VE's network namespace.
    "nftables",
    "iptables",
    // cargo xtask bench: TCP throughput between the host side and a VE.
    "iperf3",
    // Disk I/O tests and bench: direct I/O in VE cgroups.
    "fio",
    // The VM lane (tests/vm): a stock Debian kernel under qemu, an initramfs.
    "qemu-system-x86",
    "cpio",
    "e2fsprogs",
    // vzeventd's metrics are checked by a real Prometheus and promtool (tests only; the
    // package's own service is not started: no systemd here, and the tests run theirs).
    "prometheus",
    // The VE's own /proc view (meminfo, cpuinfo, uptime...): vzctl starts it where it is
    // not running.
    "lxcfs",
    // The completions cargo xtask run installs are tested in these shells too.
    "zsh",
    "fish",
];
/// Needed only for the Debian rustc path (clippy-driver for that rustc lints the BPF crate).
const DEBIAN_RUST_PACKAGES: &[&str] = &["rustc-web", "libstd-rust-web-dev-bpf", "rust-web-clippy"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn log_path() -> PathBuf {
    root().join("target/xtask.log")
}

fn step(msg: &str) {
    eprintln!("xtask: {msg}");
}

/// Runs a command; its output goes to target/xtask.log unless `show` (then it is the
/// user's). On failure the log's tail is printed.
fn run(cmd: &mut Command, show: bool) -> Result<()> {
    let desc = format!("{cmd:?}");
    if !show {
        let log = root().join("target");
        fs::create_dir_all(&log)?;
        let f = fs::OpenOptions::new().create(true).append(true).open(log_path())?;
        cmd.stdout(f.try_clone()?).stderr(f);
    }
    let status = cmd.status().with_context(|| format!("spawn {desc}"))?;
    if !status.success() {
        if !show {
            let text = fs::read_to_string(log_path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            for l in tail.iter().rev() {
                eprintln!("  | {l}");
            }
        }
        bail!("{desc} failed ({status})");
    }
    Ok(())
}

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    Command::new(cmd)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn bpf_toolchain() -> Result<BpfToolchain> {
    if let Ok(v) = std::env::var("VZ_BPF_TOOLCHAIN") {
        return BpfToolchain::from_str(&v, true)
            .map_err(|_| anyhow::anyhow!("VZ_BPF_TOOLCHAIN={v}: use debian or nightly"));
    }
    let nightly_src = output("rustup", &["component", "list", "--toolchain", "nightly", "--installed"])
        .is_some_and(|s| s.lines().any(|l| l.starts_with("rust-src")));
    Ok(if nightly_src { BpfToolchain::Nightly } else { BpfToolchain::Debian })
}

fn missing_packages(pkgs: &[&str]) -> Vec<String> {
    pkgs.iter()
        .filter(|p| !output("dpkg-query", &["-W", "-f=${db:Status-Abbrev}", p]).is_some_and(|s| s.starts_with("ii")))
        .map(|p| p.to_string())
        .collect()
}

/// Debian packages, quietly, without recommends; a config file already on disk (such as
/// the lxc-net defaults written before lxc) is kept.
fn apt_install(pkgs: &[String]) -> Result<()> {
    run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(["-o", "Dpkg::Options::=--force-confold", "-o", "Dpkg::Options::=--force-confdef"])
            .args(pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        false,
    )
}

fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

fn setup() -> Result<()> {
    let tc = bpf_toolchain()?;
    let mut want: Vec<&str> = BASE_PACKAGES.to_vec();
    if tc == BpfToolchain::Debian {
        want.extend(DEBIAN_RUST_PACKAGES);
    }
    let missing = missing_packages(&want);
    if !missing.is_empty() {
        step(&format!("installing Debian packages: {}", missing.join(" ")));
        run(Command::new("apt-get").args(["update", "-qq"]), false)?;
        apt_install(&missing)?;
    }
    setup_criu()?;
    setup_sshd()?;
    let linker = cargo_bin_dir().join("bpf-linker");
    let have = output(linker.to_str().unwrap_or("bpf-linker"), &["--version"]).unwrap_or_default();
    if !have.contains(BPF_LINKER_VERSION) {
        step(&format!(
            "building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about 80 s, cached in {})",
            linker.display()
        ));
        run(
            Command::new("cargo")
                .args([
                    "install",
                    "bpf-linker",
                    "--version",
                    BPF_LINKER_VERSION,
                    "--locked",
                    "--no-default-features",
                    "--features",
                    "llvm-22",
                ])
                .env("LLVM_PREFIX", LLVM_PREFIX),
            false,
        )?;
    }
    Ok(())
}

/// What building CRIU from source needs (its README's list for Debian).
const CRIU_BUILD_PACKAGES: &[&str] = &[
    "build-essential",
    "pkg-config",
    "libprotobuf-dev",
    "libprotobuf-c-dev",
    "protobuf-c-compiler",
    "protobuf-compiler",
    "python3-protobuf",
    "libnl-3-dev",
    "libcap-dev",
    "libnet1-dev",
    "libaio-dev",
    "libgnutls28-dev",
    "libbsd-dev",
    "libdrm-dev",
    "uuid-dev",
    "libnftables-dev",
];

/// Our patches to CRIU, applied to a source build: see each file's header.
const CRIU_PATCHES: &[(&str, &str)] = &[(
    "0001-dump-rlimits-from-proc-without-CAP_SYS_RESOURCE.patch",
    include_str!("../criu/0001-dump-rlimits-from-proc-without-CAP_SYS_RESOURCE.patch"),
)];

/// Where source builds of CRIU are kept between runs (and clones), keyed by what went in.
const CRIU_CACHE: &str = "/var/cache/vzbpf";
const CRIU_INSTALL: &str = "/usr/local/sbin/criu";

fn criu_version(bin: &str) -> Option<(u32, u32)> {
    let text = output(bin, &["--version"])?;
    let v = text.lines().find_map(|l| l.trim().strip_prefix("Version:"))?.trim().to_string();
    let mut it = v.split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Where the migration tests find sshd (with the libraries it needs beside it).
const SSHD_CACHE: &str = "/var/cache/vzbpf/openssh";

/// An OpenSSH server for the two-node migration tests, unpacked from Debian's packages
/// into SSHD_CACHE, not installed: installing openssh-server would start an sshd on the
/// host. The tests run it in a network namespace of their own.
fn setup_sshd() -> Result<()> {
    let dir = Path::new(SSHD_CACHE);
    if dir.join("usr/sbin/sshd").is_file() {
        return Ok(());
    }
    step("unpacking Debian's openssh-server for the migration tests (not installed)");
    let dl = dir.with_extension("download");
    let _ = fs::remove_dir_all(&dl);
    fs::create_dir_all(&dl)?;
    // apt's sandbox user must be able to write there.
    let _ = Command::new("chown").args(["_apt", dl.to_str().unwrap_or_default()]).status();
    let get = |dl: &Path| {
        Command::new("apt-get").args(["download", "-qq", "openssh-server", "libwrap0"]).current_dir(dl).output()
    };
    if !get(&dl)?.status.success() {
        run(Command::new("apt-get").args(["update", "-qq"]), false)?;
        let o = get(&dl)?;
        if !o.status.success() {
            bail!("apt-get download openssh-server libwrap0: {}", String::from_utf8_lossy(&o.stderr).trim());
        }
    }
    let tmp = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&tmp);
    for deb in fs::read_dir(&dl)?.flatten() {
        run(Command::new("dpkg-deb").arg("-x").arg(deb.path()).arg(&tmp), false)?;
    }
    fs::rename(&tmp, dir)?;
    let _ = fs::remove_dir_all(&dl);
    Ok(())
}

/// CRIU for `vzctl chkpnt/restore`: the distribution's when it is 4.1 or newer, else a
/// build of the tarball VZ_CRIU_TARBALL names (with our patches; cached, ~30 s once),
/// installed as /usr/local/sbin/criu. Without either, vzctl says so when asked to dump.
fn setup_criu() -> Result<()> {
    let candidate = output("apt-cache", &["policy", "criu"]).unwrap_or_default();
    let distro = candidate.lines().find_map(|l| l.trim().strip_prefix("Candidate:")).map(str::trim).unwrap_or("");
    let mut parts = distro.split(['.', '-', ':']);
    let distro_v: Option<(u32, u32)> = (|| Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?)))();
    if distro_v.is_some_and(|v| v >= (4, 1)) {
        if missing_packages(&["criu"]).is_empty() {
            return Ok(());
        }
        step(&format!("installing criu {distro}"));
        return apt_install(&["criu".to_string()]);
    }
    let Some(tarball) = std::env::var_os("VZ_CRIU_TARBALL").map(PathBuf::from).or_else(shared_criu_tarball) else {
        if criu_version(CRIU_INSTALL).is_none_or(|v| v < (4, 1)) {
            step("no criu 4.1 or newer here (set VZ_CRIU_TARBALL to a CRIU source tarball to build one): chkpnt and restore will say so");
        }
        return Ok(());
    };
    let src = fs::read(&tarball).with_context(|| format!("read VZ_CRIU_TARBALL={}", tarball.display()))?;
    let mut key = fnv(&src);
    for (name, text) in CRIU_PATCHES {
        key ^= fnv(name.as_bytes()).rotate_left(7) ^ fnv(text.as_bytes());
    }
    let dir = Path::new(CRIU_CACHE).join(format!("criu-{key:016x}"));
    let built = dir.join("src/criu/criu");
    if !built.is_file() {
        let missing = missing_packages(CRIU_BUILD_PACKAGES);
        if !missing.is_empty() {
            step(&format!("installing CRIU's build dependencies: {}", missing.join(" ")));
            apt_install(&missing)?;
        }
        step(&format!("building CRIU from {} (about 30 s, cached in {})", tarball.display(), dir.display()));
        let _ = fs::remove_dir_all(&dir);
        let unpack = dir.join("unpack");
        fs::create_dir_all(&unpack)?;
        run(Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(&unpack), false)?;
        let top = fs::read_dir(&unpack)?.flatten().next().context("empty CRIU tarball")?.path();
        fs::rename(&top, dir.join("src"))?;
        for (name, text) in CRIU_PATCHES {
            let p = dir.join(name);
            fs::write(&p, text)?;
            run(Command::new("patch").args(["-s", "-p1", "-i"]).arg(&p).current_dir(dir.join("src")), false)?;
        }
        run(Command::new("make").args(["-j2", "criu"]).current_dir(dir.join("src")), false)?;
    }
    let same = fs::read(CRIU_INSTALL).ok().is_some_and(|b| fnv(&b) == fnv(&fs::read(&built).unwrap_or_default()));
    if !same {
        let tmp = format!("{CRIU_INSTALL}.new");
        fs::copy(&built, &tmp).with_context(|| format!("install {CRIU_INSTALL}"))?;
        fs::rename(&tmp, CRIU_INSTALL)?;
        step(&format!("installed {CRIU_INSTALL} (built from {})", tarball.display()));
    }
    Ok(())
}

/// The CRIU tarball this workplace keeps beside the checkout (`../shared/third-party/`),
/// when VZ_CRIU_TARBALL does not name one.
fn shared_criu_tarball() -> Option<PathBuf> {
    let dirs = [root().join("../shared/third-party"), PathBuf::from("/work/shared/third-party")];
    dirs.iter().find_map(|d| {
        let mut found: Vec<PathBuf> = fs::read_dir(d)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("criu-") && n.ends_with(".tar.gz"))
            })
            .collect();
        found.sort();
        found.pop()
    })
}

/// FNV-1a over bytes: a cache key, not a security measure.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn object_path() -> PathBuf {
    root().join("target/bpf/vz.bpf.o")
}

/// `cargo VERB` (build or clippy) in ebpf/ for bpfel-unknown-none, with the BPF
/// toolchain's rustc. For clippy on the Debian path, Debian's cargo runs first in PATH, so
/// its cargo-clippy and clippy-driver (rust-web-clippy) match /usr/bin/rustc.
fn ebpf_cargo(tc: BpfToolchain, verb: &str) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root().join("ebpf"))
        // The outer `cargo xtask` sets these for its own toolchain; the BPF build picks its own.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        // BPF ISA v3 for atomics; BTF so bpftool can show types and sources.
        .env("CARGO_TARGET_BPFEL_UNKNOWN_NONE_RUSTFLAGS", "-C target-cpu=v3 -C link-arg=--btf");
    let args = [verb, "--release", "--locked", "--target", "bpfel-unknown-none"];
    match tc {
        BpfToolchain::Debian => {
            let path = if verb == "clippy" {
                std::env::join_paths([Path::new("/usr/bin"), Path::new("/bin"), &cargo_bin_dir()]).unwrap_or_default()
            } else {
                path_with_cargo_bin()
            };
            cmd.env("PATH", path)
                .env("RUSTC", "/usr/bin/rustc")
                // aya-ebpf enables asm_experimental_arch on this target.
                .env("RUSTC_BOOTSTRAP", "1")
                .args(args);
        }
        BpfToolchain::Nightly => {
            cmd.env("PATH", path_with_cargo_bin()).arg("+nightly").args(args).args(["-Z", "build-std=core"]);
        }
    }
    cmd
}

fn build_ebpf() -> Result<()> {
    let tc = bpf_toolchain()?;
    step(&format!("building eBPF object ({tc:?} toolchain)"));
    let ebpf = root().join("ebpf");
    let mut cmd = ebpf_cargo(tc, "build");
    run(&mut cmd, false)?;
    let built = ebpf.join("target/bpfel-unknown-none/release/vz");
    let dest = object_path();
    fs::create_dir_all(dest.parent().expect("parent"))?;
    // Copy only when changed, so userspace is not rebuilt for nothing.
    let new = fs::read(&built).with_context(|| format!("read {}", built.display()))?;
    if fs::read(&dest).ok().as_deref() != Some(&new[..]) {
        fs::write(&dest, &new)?;
    }
    Ok(())
}

fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut paths = vec![cargo_bin_dir()];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root()).args(args).env("VZ_BPF_OBJECT", object_path());
    c
}

fn build(release: bool) -> Result<()> {
    build_ebpf()?;
    step(&format!("building userspace ({})", if release { "release" } else { "debug" }));
    let mut args = vec!["build", "--workspace", "--bins", "--locked", "--quiet"];
    if release {
        args.push("--release");
    }
    run(&mut cargo(&args), true)
}

fn is_root() -> bool {
    output("id", &["-u"]).is_some_and(|s| s.trim() == "0")
}

/// Runs `cargo test`, passing its output through, and adds up its result lines.
fn cargo_test(args: &[&str], totals: &mut (u64, u64)) -> Result<()> {
    use std::io::{BufRead as _, Write as _};
    let mut child = cargo(args).stdout(Stdio::piped()).spawn().context("spawn cargo test")?;
    let out = child.stdout.take().context("stdout")?;
    for line in std::io::BufReader::new(out).lines() {
        let line = line?;
        println!("{line}");
        let _ = std::io::stdout().flush();
        // "test result: ok. 10 passed; 0 failed; 0 ignored; ..."
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let words: Vec<&str> = part.split_whitespace().collect();
                let n = words.iter().rev().nth(1).and_then(|w| w.parse::<u64>().ok()).unwrap_or(0);
                match words.last() {
                    Some(&"passed") => totals.0 += n,
                    Some(&"failed") => totals.1 += n,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("tests: {} passed, {} failed", totals.0, totals.1.max(1));
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// `cargo fmt --check` and `cargo clippy -D warnings` on both workspaces. The BPF crate is
/// linted for its own target with the clippy of the rustc that builds it.
fn lint() -> Result<()> {
    step("lint: module circles and file lengths, rustfmt and clippy (-D warnings) on both workspaces");
    layout::check(&root().join("userspace/src"))?;
    run(&mut cargo(&["fmt", "--all", "--check"]), true)?;
    run(&mut cargo(&["clippy", "--workspace", "--all-targets", "--locked", "--quiet", "--", "-D", "warnings"]), true)?;
    run(Command::new("cargo").current_dir(root().join("ebpf")).args(["fmt", "--all", "--check"]), true)?;
    let mut cmd = ebpf_cargo(bpf_toolchain()?, "clippy");
    cmd.arg("--quiet");
    cmd.args(["--", "-D", "warnings"]);
    run(&mut cmd, true)
}

fn test() -> Result<()> {
    setup()?;
    build(false)?;
    lint()?;
    let mut totals = (0, 0);
    step("unit tests (no root needed)");
    cargo_test(&["test", "--locked", "-p", "vzbpf", "--lib"], &mut totals)?;
    if !is_root() {
        bail!("the integration tests load BPF programs and make cgroups: run them as root");
    }
    step("integration tests against the host kernel");
    cargo_test(&["test", "--locked", "-p", "vz-tests", "--tests"], &mut totals)?;
    vm_lane(&mut totals)?;
    println!("tests: {} passed, {} failed", totals.0, totals.1);
    Ok(())
}

/// Boots Debian's stock kernel (downloaded once into target/vm) under qemu with an
/// initramfs of our binaries and runs tests/vm/quota.sh there: simfs disk quota on ext4
/// project quota, which this host's kernel cannot do (no CONFIG_QFMT_V2).
fn vm_lane(totals: &mut (u64, u64)) -> Result<()> {
    step("VM lane: a stock Debian kernel under qemu (simfs project quota)");
    let ok = Command::new("bash")
        .arg(root().join("tests/vm/run.sh"))
        .arg(root().join("target"))
        .arg(root().join("target/debug"))
        .status()
        .context("run tests/vm/run.sh")?
        .success();
    if ok {
        totals.0 += 1;
        Ok(())
    } else {
        totals.1 += 1;
        println!("tests: {} passed, {} failed", totals.0, totals.1);
        bail!("the VM lane failed: its console is in target/vm/console.log")
    }
}

/// Only for `cargo xtask bench`: the runtimes its peers section measures beside vzbpf.
/// systemd-nspawn's package is pinned to the host's systemd version (a newer one would
/// upgrade the host's systemd with it); where that version is not in the archive the
/// bench says nspawn is not installed.
const PEER_PACKAGES: &[&str] = &["crun", "lxc", "systemd-container"];

/// lxc's package turns on `lxc-net` (a bridge, dnsmasq and NAT rules on the host) unless
/// this file says no; it is written before the package is installed, and kept by dpkg
/// (--force-confold), only if the admin has none.
const LXC_NET_DEFAULTS: &str = "/etc/default/lxc-net";

fn install_peers() -> Result<()> {
    let missing = missing_packages(PEER_PACKAGES);
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("installing the peers the bench compares with: {}", missing.join(" ")));
    if missing.iter().any(|p| p == "lxc") && !Path::new(LXC_NET_DEFAULTS).exists() {
        fs::write(
            LXC_NET_DEFAULTS,
            "# Written by vzbpf's cargo xtask bench before lxc was installed: no lxcbr0 bridge,\n\
             # dnsmasq or NAT rules on this host.\nUSE_LXC_BRIDGE=\"false\"\n",
        )?;
    }
    run(Command::new("apt-get").args(["update", "-qq"]), false)?;
    let systemd = output("dpkg-query", &["-W", "-f=${Version}", "systemd"]).unwrap_or_default();
    let (nspawn, rest): (Vec<String>, Vec<String>) = missing.into_iter().partition(|p| p == "systemd-container");
    if !rest.is_empty() {
        apt_install(&rest)?;
    }
    if !nspawn.is_empty() {
        let systemd = systemd.trim();
        let offered = output("apt-cache", &["madison", "systemd-container"]).unwrap_or_default();
        if offered.lines().any(|l| l.split('|').nth(1).is_some_and(|v| v.trim() == systemd)) {
            apt_install(&[format!("systemd-container={systemd}")])?;
        } else {
            println!(
                "systemd-container {systemd} (the host's systemd version) is not in the archive and a newer one \
                 would upgrade the host's systemd: the bench measures no systemd-nspawn"
            );
        }
    }
    Ok(())
}

fn bench() -> Result<()> {
    setup()?;
    install_peers()?;
    build(true)?;
    step("benchmarks");
    run(&mut Command::new(root().join("target/release/vz-bench")), true)
}

/// Where `run` installs the binaries, their man pages and bash completions.
const INSTALL_DIR: &str = "/usr/local/sbin";
const MAN_DIR: &str = "/usr/local/share/man/man8";
const COMPLETIONS_DIR: &str = "/usr/local/share/bash-completion/completions";
/// zsh's and fish's directories for completions of local programs (searched by default).
const ZSH_COMPLETIONS_DIR: &str = "/usr/local/share/zsh/site-functions";
const FISH_COMPLETIONS_DIR: &str = "/usr/local/share/fish/vendor_completions.d";
const UNIT_DIR: &str = "/etc/systemd/system";

/// The main job: install vzctl, vzlist and vzpkg, create VE 101 from the built-in default
/// template if it does not exist, start it if it is not running, and show it as an admin
/// sees it. Running it again is harmless.
fn demo() -> Result<()> {
    setup()?;
    build(true)?;
    let bins = ["vzctl", "vzlist", "vzubc", "vzeventd", "vznetstat", "vzpkg", "vzstat", "vzmigrate"];
    fs::create_dir_all(COMPLETIONS_DIR)?;
    for b in bins {
        let dest = Path::new(INSTALL_DIR).join(b);
        let tmp = dest.with_extension("new");
        fs::copy(root().join("target/release").join(b), &tmp).with_context(|| format!("install {}", dest.display()))?;
        fs::rename(&tmp, &dest)?;
        // Man pages and completions from the binaries' own command definitions.
        run(Command::new(&dest).env("VZ_GENERATE", format!("man:{MAN_DIR}")), false)?;
        for (shell, dir, name) in [
            ("bash", COMPLETIONS_DIR, b.to_string()),
            ("zsh", ZSH_COMPLETIONS_DIR, format!("_{b}")),
            ("fish", FISH_COMPLETIONS_DIR, format!("{b}.fish")),
        ] {
            let o = Command::new(&dest).env("VZ_GENERATE", shell).output()?;
            if !o.status.success() {
                bail!("{b}: {shell} completion: {}", String::from_utf8_lossy(&o.stderr).trim());
            }
            fs::create_dir_all(dir)?;
            let file = Path::new(dir).join(name);
            let tmp = Path::new(dir).join(format!(".{b}.{shell}.new"));
            fs::write(&tmp, &o.stdout)?;
            fs::rename(&tmp, &file)?;
        }
    }
    step(&format!(
        "installed {} in {INSTALL_DIR}, man pages in {MAN_DIR}, completions in {COMPLETIONS_DIR}, {ZSH_COMPLETIONS_DIR}, {FISH_COMPLETIONS_DIR}",
        bins.join(", ")
    ));
    // The node service (OpenVZ's vz): programs pinned and ONBOOT VEs started at boot; the
    // event daemon (reboots inside VEs, limit hits, metrics).
    fs::create_dir_all(UNIT_DIR)?;
    for name in ["vz.service", "vzeventd.service"] {
        let unit = Path::new(UNIT_DIR).join(name);
        fs::copy(root().join("dist/systemd").join(name), unit.with_extension("new"))?;
        fs::rename(unit.with_extension("new"), &unit)?;
        if Path::new("/run/systemd/system").is_dir() {
            run(Command::new("systemctl").arg("daemon-reload"), false)?;
            run(Command::new("systemctl").args(["enable", name]), false)?;
            step(&format!("installed and enabled {}", unit.display()));
        } else {
            step(&format!("installed {} (systemd is not running here: not enabled)", unit.display()));
        }
    }
    let vzctl = |args: &[&str]| -> Result<String> {
        println!("# vzctl {}", args.join(" "));
        let o = Command::new(Path::new(INSTALL_DIR).join("vzctl")).args(args).output()?;
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        print!("{out}");
        eprint!("{}", String::from_utf8_lossy(&o.stderr));
        if !o.status.success() {
            bail!("vzctl {} failed ({})", args.join(" "), o.status);
        }
        Ok(out)
    };
    let status = vzctl(&["status", "101"])?;
    if status.contains("deleted") {
        vzctl(&["create", "101", "--hostname", "ve101.local"])?;
    }
    if !status.contains(" running") {
        vzctl(&["start", "101"])?;
    }
    vzctl(&["exec2", "101", "cat /etc/os-release | head -1; hostname; ps"])?;
    println!("# vzlist -a");
    run(Command::new(Path::new(INSTALL_DIR).join("vzlist")).arg("-a"), true)?;
    vzctl(&["ubc", "101"])?;
    println!("\nVE 101 is running. Next: vzctl enter 101 | vzctl stop 101 | vzctl destroy 101");
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup => setup(),
        Cmd::Build { debug } => {
            setup()?;
            build(!debug)
        }
        Cmd::Test => test(),
        Cmd::Lint => setup().and_then(|()| build_ebpf()).and_then(|()| lint()),
        Cmd::Bench => bench(),
        Cmd::Vm => setup().and_then(|()| build(false)).and_then(|()| vm_lane(&mut (0, 0))),
        Cmd::Run => demo(),
    }
}
