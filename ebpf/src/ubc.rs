//! Beancounter arithmetic on map records, safe against concurrent CPUs.
//!
//! A charge is a compare-and-swap loop, so `held` never passes the threshold even for an
//! instant and a refused charge leaves `held` untouched, as in OpenVZ's kernel.
use vz_common::UbcUsage;

/// CAS retries before falling back to add-then-back-out. Keeps the loop bounded for the
/// verifier; the fallback is still exact about what it grants, it may only refuse spuriously
/// under extreme contention.
const CAS_TRIES: u32 = 8;

/// 64-bit BPF atomics, written as instructions: Rust's atomics are not usable on this target
/// (`atomic-cas: false`, and `singlethread` lets them lower to plain loads and stores).
/// Needs BPF ISA v3 (Linux 5.12).
pub mod atomic {
    #[inline(always)]
    pub fn load(p: *mut u64) -> u64 {
        // SAFETY: p points into a map value (see `charge`).
        unsafe { core::ptr::read_volatile(p) }
    }

    /// Returns the value found at `p`; stored `new` iff that equals `old`.
    #[inline(always)]
    pub fn cmpxchg(p: *mut u64, old: u64, new: u64) -> u64 {
        let mut r0 = old;
        // SAFETY: p points into a map value, 8-byte aligned.
        unsafe {
            core::arch::asm!(
                "r0 = cmpxchg_64({p} + 0, r0, {new})",
                p = in(reg) p,
                new = in(reg) new,
                inout("r0") r0,
                options(nostack),
            );
        }
        r0
    }

    /// Returns the value before the add.
    #[inline(always)]
    pub fn fetch_add(p: *mut u64, v: u64) -> u64 {
        let mut v = v;
        // SAFETY: as above.
        unsafe {
            core::arch::asm!(
                "{v} = atomic_fetch_add((u64 *)({p} + 0), {v})",
                p = in(reg) p,
                v = inout(reg) v,
                options(nostack),
            );
        }
        v
    }

    /// Plain 64-bit store; atomic on BPF for an aligned u64.
    #[inline(always)]
    pub fn store(p: *mut u64, v: u64) {
        // SAFETY: p points into a map value (see `charge`).
        unsafe { core::ptr::write_volatile(p, v) }
    }

    #[inline(always)]
    pub fn add(p: *mut u64, v: u64) {
        // SAFETY: as above.
        unsafe {
            core::arch::asm!(
                "lock *(u64 *)({p} + 0) += {v}",
                p = in(reg) p,
                v = in(reg) v,
                options(nostack),
            );
        }
    }
}

/// Adds `amount` to `held` unless the result would pass `threshold`; returns whether the
/// charge was granted. A refusal counts in `failcnt`.
#[inline(always)]
pub fn charge(usage: *mut UbcUsage, amount: u64, threshold: u64) -> bool {
    // SAFETY: usage is a valid map value pointer: 8-byte aligned, alive for this run
    // (non-preallocated maps free records only after an RCU grace period).
    let (held, maxheld, failcnt) =
        unsafe { (&raw mut (*usage).held, &raw mut (*usage).maxheld, &raw mut (*usage).failcnt) };
    let mut cur = atomic::load(held);
    let mut granted: Option<u64> = None;
    for _ in 0..CAS_TRIES {
        let new = cur.wrapping_add(amount);
        if new > threshold || new < cur {
            atomic::add(failcnt, 1);
            return false;
        }
        let seen = atomic::cmpxchg(held, cur, new);
        if seen == cur {
            granted = Some(new);
            break;
        }
        cur = seen;
    }
    let new = match granted {
        Some(new) => new,
        None => {
            let new = atomic::fetch_add(held, amount).wrapping_add(amount);
            if new > threshold {
                atomic::add(held, amount.wrapping_neg());
                atomic::add(failcnt, 1);
                return false;
            }
            new
        }
    };
    raise_max(maxheld, new);
    true
}

/// Takes `amount` off `held`, never below zero.
#[inline(always)]
pub fn uncharge(usage: *mut UbcUsage, amount: u64) {
    // SAFETY: as in `charge`.
    let held = unsafe { &raw mut (*usage).held };
    let mut cur = atomic::load(held);
    for _ in 0..CAS_TRIES {
        let seen = atomic::cmpxchg(held, cur, cur.saturating_sub(amount));
        if seen == cur {
            return;
        }
        cur = seen;
    }
    // Every uncharge matches an earlier charge (see VZ_SOCKS), so held >= amount here.
    atomic::add(held, amount.wrapping_neg());
}

#[inline(always)]
fn raise_max(maxheld: *mut u64, new: u64) {
    let mut cur = atomic::load(maxheld);
    for _ in 0..CAS_TRIES {
        if new <= cur {
            return;
        }
        let seen = atomic::cmpxchg(maxheld, cur, new);
        if seen == cur {
            return;
        }
        cur = seen;
    }
}
