//! Builds the described system: per PD a CNode, VSpace, TCB, notification and input endpoint;
//! the program loaded from its ELF; IPC buffer, PD info page (`pd-info`), windows, pool
//! and shared regions mapped; the channels' badged capabilities; then every PD started.

use pd_runtime::layout::{IPC_BUFFER, badge, slot as pds, window};
use sel4::{
    AsidPool, CNode, Error, Frame, Notification, Rights, Tcb, TcbConfig, UserContext, VSpace, Word,
    slot,
};

use crate::alloc::{Alloc, Kind};
use crate::elf;
use crate::system::{Pool, System};
use crate::vspace::{self, Spares};

/// Most PDs the root task builds.
pub const MAX_PDS: usize = pd_runtime::layout::MAX_PDS;
/// Most shared regions.
const MAX_REGIONS: usize = pd_runtime::layout::MAX_REGIONS;

/// The kernel objects of one PD, as capabilities in the root task's CSpace.
#[derive(Debug, Clone, Copy, Default)]
pub struct PdCaps {
    /// Thread.
    pub tcb: Word,
    /// Root CNode (unguarded in the root task's CSpace: address slots with depth `radix`).
    pub cnode: Word,
    /// log2 of the CNode's slots.
    pub radix: u8,
    /// Address space.
    pub vspace: Word,
    /// Bound notification.
    pub ntfn: Word,
    /// Input endpoint.
    pub input: Word,
}

impl PdCaps {
    fn cnode(&self) -> CNode {
        CNode {
            cptr: self.cnode,
            depth: self.radix,
        }
    }
}

/// A failure while building, with the step that failed.
#[derive(Debug, Clone, Copy)]
pub struct BuildError {
    /// What was being done.
    pub step: &'static str,
    /// The PD concerned.
    pub pd: &'static str,
    /// The kernel's answer (or `InvalidArgument` for a bad description or ELF).
    pub error: Error,
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} for PD {}: {}", self.step, self.pd, self.error)
    }
}

struct Ctx<'a> {
    a: &'a mut Alloc,
    sp: Spares,
    pd: &'static str,
}

/// Runs one step, naming it and the PD in the error.
macro_rules! at {
    ($cx:expr, $step:expr, $e:expr) => {{
        let pd = $cx.pd;
        ($e).map_err(|error| BuildError {
            step: $step,
            pd,
            error,
        })
    }};
}

mod hyperv;

/// The root task's endpoint for faults and reports, and what was built.
#[derive(Debug)]
pub struct Built {
    /// Per PD.
    pub pds: [PdCaps; MAX_PDS],
    /// The root task's endpoint.
    pub monitor: Word,
}

/// Builds every PD and starts them; `hv` is what the kernel's Hyper-V service handed over at
/// boot (the driver of a system on Hyper-V gets it).
pub fn build(
    sys: &System,
    a: &mut Alloc,
    hv: Option<&sel4::sys::bootinfo::HyperV>,
) -> Result<Built, BuildError> {
    let root = Alloc::root_cnode();
    let mut cx = Ctx {
        a,
        sp: Spares::default(),
        pd: "root",
    };
    if sys.pds.len() > MAX_PDS {
        return Err(BuildError {
            step: "count PDs",
            pd: "root",
            error: Error::RangeError,
        });
    }
    let monitor = at!(cx, "monitor endpoint", cx.a.object(Kind::Endpoint, 0))?;
    let mut caps = [PdCaps::default(); MAX_PDS];

    // Shared regions: frames created once (consecutive slots), mapped through copies.
    if sys.regions.len() > MAX_REGIONS {
        return Err(BuildError {
            step: "count regions",
            pd: "root",
            error: Error::RangeError,
        });
    }
    check_windows(sys)?;
    let mut region_base = [0 as Word; MAX_REGIONS];
    for (r, region) in sys.regions.iter().enumerate() {
        cx.pd = region.name;
        region_base[r] = at!(cx, "region frames", cx.a.frames(region.pages as Word))?;
    }

    for (i, pd) in sys.pds.iter().enumerate() {
        cx.pd = pd.name;
        let radix = pds::cnode_radix(pd.pool.as_ref().map_or(0, |p| p.pages as Word));
        let c = PdCaps {
            tcb: at!(cx, "TCB", cx.a.object(Kind::Tcb, 0))?,
            cnode: at!(cx, "CNode", cx.a.object(Kind::CNode, Word::from(radix)))?,
            radix,
            vspace: at!(cx, "VSpace", cx.a.object(Kind::VSpace, 0))?,
            ntfn: at!(cx, "notification", cx.a.object(Kind::Notification, 0))?,
            input: at!(cx, "input endpoint", cx.a.object(Kind::Endpoint, 0))?,
        };
        caps[i] = c;
        let vs = VSpace(c.vspace);
        at!(
            cx,
            "ASID",
            AsidPool(slot::seL4_CapInitThreadASIDPool).assign(vs)
        )?;
        let entry = load(&mut cx, pd.elf, vs)?;

        let ipc = at!(cx, "IPC buffer", cx.a.object(Kind::Frame, 0))?;
        at!(
            cx,
            "zero IPC buffer",
            vspace::fill(cx.a, &mut cx.sp, Frame(ipc), |pg| pg.zero())
        )?;
        at!(
            cx,
            "map IPC buffer",
            vspace::map(
                cx.a,
                &mut cx.sp,
                Frame(ipc),
                vs,
                IPC_BUFFER,
                Rights::READ_WRITE
            )
        )?;

        let info = at!(cx, "info page", cx.a.object(Kind::Frame, 0))?;
        let mut words = [0u64; 512];
        at!(
            cx,
            "info runs",
            info_runs(sys, pd, &region_base, &mut words)
        )?;
        at!(
            cx,
            "fill info page",
            vspace::fill(cx.a, &mut cx.sp, Frame(info), |pg| {
                for (i, w) in words.iter().enumerate() {
                    pg.write_u64(i * 8, *w);
                }
            })
        )?;
        at!(
            cx,
            "map info page",
            vspace::map(
                cx.a,
                &mut cx.sp,
                Frame(info),
                vs,
                pd_info::VADDR as Word,
                Rights::READ
            )
        )?;

        for w in pd.windows {
            for p in 0..w.pages as Word {
                at!(
                    cx,
                    "window tables",
                    vspace::tables(cx.a, &mut cx.sp, vs, w.vaddr + p * 4096)
                )?;
            }
        }
        if let Some(pool) = &pd.pool {
            give_pool(&mut cx, pool, &region_base, sys, c, vs)?;
        }
        if let Some(wiring) = &pd.hyperv {
            hyperv::give(&mut cx, hv, wiring, c, vs)?;
        }
        for m in pd.maps {
            let pages = sys.regions.get(m.region).map_or(0, |r| r.pages) as Word;
            let base = *region_base.get(m.region).ok_or(BuildError {
                step: "map region",
                pd: pd.name,
                error: Error::RangeError,
            })?;
            let rights = if m.writable {
                Rights::READ_WRITE
            } else {
                Rights::READ
            };
            for p in 0..pages {
                let copy = at!(cx, "slot", cx.a.slot())?;
                at!(
                    cx,
                    "copy region frame",
                    root.copy(copy, root, base + p, Rights::ALL)
                )?;
                at!(
                    cx,
                    "map region",
                    vspace::map(
                        cx.a,
                        &mut cx.sp,
                        Frame(copy),
                        vs,
                        m.vaddr + p * 4096,
                        rights
                    )
                )?;
            }
        }

        // The PD's own capabilities.
        let cn = c.cnode();
        at!(
            cx,
            "input cap",
            cn.copy(pds::INPUT, root, c.input, Rights::ALL)
        )?;
        at!(
            cx,
            "cnode cap",
            cn.mint(
                pds::CNODE,
                root,
                c.cnode,
                Rights::ALL,
                TcbConfig::guard_for_radix(c.radix)
            )
        )?;
        at!(
            cx,
            "vspace cap",
            cn.copy(pds::VSPACE, root, c.vspace, Rights::ALL)
        )?;
        at!(cx, "tcb cap", cn.copy(pds::TCB, root, c.tcb, Rights::ALL))?;
        at!(
            cx,
            "fault cap",
            cn.mint(
                pds::FAULT_EP,
                root,
                monitor,
                Rights::ALL,
                badge::FAULT | i as Word
            )
        )?;
        at!(
            cx,
            "monitor cap",
            cn.mint(
                pds::MONITOR,
                root,
                monitor,
                Rights::ALL,
                badge::MONITOR | i as Word
            )
        )?;
        at!(
            cx,
            "self cap",
            cn.mint(
                pds::SELF_NOTIFY,
                root,
                c.ntfn,
                Rights::ALL,
                1 << pd_runtime::layout::SELF_CHANNEL
            )
        )?;

        let tcb = Tcb(c.tcb);
        let cfg = TcbConfig {
            fault_ep: pds::FAULT_EP,
            priority: pd.priority,
            cspace: c.cnode,
            cspace_data: TcbConfig::guard_for_radix(c.radix),
            vspace: vs,
            ipc_buffer: (IPC_BUFFER, Frame(ipc)),
        };
        at!(cx, "configure TCB", tcb.configure(&cfg))?;
        at!(
            cx,
            "bind notification",
            tcb.bind_notification(Notification(c.ntfn))
        )?;
        let regs = UserContext {
            rip: entry,
            // pd_runtime::pd_index(): the PD finds its own generated configuration by it.
            rsi: i as Word,
            ..UserContext::default()
        };
        at!(cx, "write registers", tcb.write_registers(&regs))?;
    }

    // VSpace capabilities (cap_vspace) once every VSpace exists.
    for (i, pd) in sys.pds.iter().enumerate() {
        cx.pd = pd.name;
        for &(k, target) in pd.vspace_caps {
            let t = caps
                .get(target)
                .filter(|_| target < sys.pds.len())
                .ok_or(BuildError {
                    step: "cap_vspace",
                    pd: pd.name,
                    error: Error::RangeError,
                })?;
            at!(
                cx,
                "cap_vspace",
                caps[i]
                    .cnode()
                    .copy(pds::VSPACE_CAP_BASE + k, root, t.vspace, Rights::ALL)
            )?;
        }
    }

    for ch in sys.channels {
        let (a, ia) = ch.a;
        let (b, ib) = ch.b;
        cx.pd = "channel";
        let (ca, cb) = match (
            caps.get(a).filter(|_| a < sys.pds.len()),
            caps.get(b).filter(|_| b < sys.pds.len()),
        ) {
            (Some(x), Some(y))
                if ia <= pd_runtime::layout::MAX_CHANNEL
                    && ib <= pd_runtime::layout::MAX_CHANNEL =>
            {
                (*x, *y)
            }
            _ => {
                return Err(BuildError {
                    step: "channel ends",
                    pd: "channel",
                    error: Error::RangeError,
                });
            }
        };
        // Each end signals the other's notification with the badge of the other's channel id.
        at!(
            cx,
            "notify cap",
            ca.cnode().mint(
                pds::NOTIFY_BASE + Word::from(ia),
                root,
                cb.ntfn,
                Rights::ALL,
                1 << ib
            )
        )?;
        at!(
            cx,
            "notify cap",
            cb.cnode().mint(
                pds::NOTIFY_BASE + Word::from(ib),
                root,
                ca.ntfn,
                Rights::ALL,
                1 << ia
            )
        )?;
        if ch.b_calls_a {
            at!(
                cx,
                "ppcall cap",
                cb.cnode().mint(
                    pds::PPCALL_BASE + Word::from(ib),
                    root,
                    ca.input,
                    Rights::ALL,
                    badge::PPCALL | Word::from(ia)
                )
            )?;
        }
    }

    for (i, pd) in sys.pds.iter().enumerate() {
        cx.pd = pd.name;
        at!(cx, "resume", Tcb(caps[i].tcb).resume())?;
    }
    Ok(Built { pds: caps, monitor })
}

/// Refuses a window the image cannot use, by the rule `cargo xtask check` applies too
/// (`pd_runtime::layout::window`): inside the run-time mapping range below 4 GiB, and no larger
/// than the pool of the driver that serves the client (its fault handler).
fn check_windows(sys: &System) -> Result<(), BuildError> {
    for pd in sys.pds {
        let pool_pages = pd
            .fault_handler
            .and_then(|d| sys.pds.get(d))
            .and_then(|d| d.pool.as_ref())
            .map_or(0, |p| p.pages as u64);
        for w in pd.windows {
            let size = (w.pages as u64).saturating_mul(window::PAGE);
            let step = match window::placement(w.vaddr, size) {
                Err(window::Misplaced::AtZero) => "window at address 0",
                Err(window::Misplaced::OverIpcBuffer) => "window over the IPC buffer",
                Err(window::Misplaced::BelowStart) => "window below the run-time range",
                Err(window::Misplaced::Above4GiB) => "window above 4 GiB",
                Ok(()) if !window::fits_pool(size, pool_pages) => "window larger than the pool",
                Ok(()) => continue,
            };
            return Err(BuildError {
                step,
                pd: pd.name,
                error: Error::RangeError,
            });
        }
    }
    Ok(())
}

/// Gives a PD its pool: per page a frame capability mapped in the PD at the pool address and
/// moved into slot `POOL_BASE + page` (moving keeps the mapping), from which the PD derives one
/// copy per client mapping. A pool backed by a region gets copies of the region's frames, so a
/// revoke by the PD leaves the other mappings of the region (the host's) alone.
fn give_pool(
    cx: &mut Ctx<'_>,
    pool: &Pool,
    region_base: &[Word],
    sys: &System,
    c: PdCaps,
    vs: VSpace,
) -> Result<(), BuildError> {
    let root = Alloc::root_cnode();
    let pages = pool.pages as Word;
    let source = match pool.region {
        Some(r) => {
            let region_pages = sys.regions.get(r).map_or(0, |x| x.pages) as Word;
            let base = *region_base
                .get(r)
                .filter(|_| pages <= region_pages)
                .ok_or(BuildError {
                    step: "pool region",
                    pd: cx.pd,
                    error: Error::RangeError,
                })?;
            Some(base)
        }
        None => None,
    };
    let fresh = match source {
        Some(_) => 0,
        None => at!(cx, "pool frames", cx.a.frames(pages))?,
    };
    for p in 0..pages {
        let f = match source {
            Some(base) => {
                let copy = at!(cx, "slot", cx.a.slot())?;
                at!(
                    cx,
                    "copy pool frame",
                    root.copy(copy, root, base + p, Rights::ALL)
                )?;
                copy
            }
            None => fresh + p,
        };
        at!(
            cx,
            "map pool page",
            vspace::map(
                cx.a,
                &mut cx.sp,
                Frame(f),
                vs,
                pool.vaddr + p * 4096,
                Rights::READ_WRITE
            )
        )?;
        at!(
            cx,
            "give pool frame",
            c.cnode().move_cap(pds::POOL_BASE + p, root, f)
        )?;
    }
    Ok(())
}

/// The PD info page's words (`pd-info`): the frames behind each of the PD's region
/// maps, in runs of consecutive frame numbers. `RangeError` if they need more runs than a page
/// holds.
fn info_runs(
    sys: &System,
    pd: &crate::system::Pd,
    region_base: &[Word],
    words: &mut [u64; 512],
) -> Result<(), Error> {
    use pd_info::{MAX_RUNS, Run, encode};
    let mut runs = [Run {
        vaddr: 0,
        pfn: 0,
        pages: 0,
    }; MAX_RUNS];
    let mut n = 0;
    for m in pd.maps {
        let pages = sys.regions.get(m.region).map_or(0, |r| r.pages) as Word;
        let base = *region_base.get(m.region).ok_or(Error::RangeError)?;
        for p in 0..pages {
            let pfn = Frame(base + p).paddr()? >> 12;
            let vaddr = m.vaddr + p * 4096;
            if n > 0 {
                let last = &mut runs[n - 1];
                if last.vaddr + last.pages * 4096 == vaddr && last.pfn + last.pages == pfn {
                    last.pages += 1;
                    continue;
                }
            }
            if n == MAX_RUNS {
                return Err(Error::RangeError);
            }
            runs[n] = Run {
                vaddr,
                pfn,
                pages: 1,
            };
            n += 1;
        }
    }
    if encode(&runs[..n], words) {
        Ok(())
    } else {
        Err(Error::RangeError)
    }
}

/// Loads a program: one frame per page of each segment, filled through the scratch mapping.
fn load(cx: &mut Ctx<'_>, image: &'static [u8], vs: VSpace) -> Result<Word, BuildError> {
    let bad = |step| BuildError {
        step,
        pd: cx.pd,
        error: Error::InvalidArgument,
    };
    let mut failure = None;
    let pd = cx.pd;
    let a = &mut *cx.a;
    let sp = &mut cx.sp;
    let entry = elf::parse(image, |seg| {
        let pages = seg.mem_len.div_ceil(4096);
        for p in 0..pages {
            let page_va = seg.vaddr + p * 4096;
            let r = (|| {
                let f = a.object(Kind::Frame, 0)?;
                let start = (p * 4096) as usize;
                let end = (start + 4096).min(seg.file_len);
                vspace::fill(a, sp, Frame(f), |pg| {
                    pg.zero();
                    if start < end {
                        pg.write_bytes(0, &image[seg.offset + start..seg.offset + end]);
                    }
                })?;
                let rights = if seg.writable {
                    Rights::READ_WRITE
                } else {
                    Rights::READ
                };
                vspace::map(a, sp, Frame(f), vs, page_va, rights)
            })();
            if let Err(e) = r {
                failure = Some(BuildError {
                    step: "load segment",
                    pd,
                    error: e,
                });
                return Err(elf::ElfError::BadLayout);
            }
        }
        Ok(())
    });
    match (entry, failure) {
        (_, Some(f)) => Err(f),
        (Ok(e), None) => Ok(e),
        (Err(_), None) => Err(bad("parse ELF")),
    }
}
