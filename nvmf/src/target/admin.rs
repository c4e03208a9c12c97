//! Admin commands of the target's controllers: Identify (controller, namespace,
//! active namespace list, namespace descriptors), Get/Set Features (number of queues,
//! keep-alive timer, and the rest stored), Get Log Page (discovery, error
//! information, SMART, firmware slot, changed namespaces), Keep Alive, Asynchronous
//! Event Request (held until a namespace notice is owed or the controller goes).

use nvme::spec::{
    admin_opc, cns, generic, oncs, sct, specific, IdentifyController, IdentifyNamespace, LbaFormat,
    Sqe, Status,
};

use super::ctrlr::{Ctrlr, AEN_NS_ATTR, FEAT_ASYNC_EVENT_CONFIG, VERSION};
use super::tgt;
use crate::spec::bytes::{as_bytes, fill_str, put, zeroed};
use crate::spec::fabrics::{
    DiscoveryLogEntry, DiscoveryLogHeader, ADRFAM_IPV4, ADRFAM_IPV6, SUBTYPE_NVM,
    TREQ_SECURE_CHANNEL_NOT_REQUIRED, TRTYPE_TCP,
};

/// Keep Alive and Asynchronous Event Request opcodes (NVMe 1.4 figure 139).
const KEEP_ALIVE: u8 = 0x18;
const ASYNC_EVENT_REQUEST: u8 = 0x0c;

/// Feature ids (figure 271) beyond `nvme::spec::feat`.
const FEAT_NUM_QUEUES: u8 = 0x07;
const FEAT_KEEP_ALIVE_TIMER: u8 = 0x0f;
const FEAT_STORED: &[u8] = &[0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0a, 0x0b];

/// Identify CNS 3: Namespace Identification Descriptor list (figure 245).
const CNS_NS_DESCRIPTORS: u32 = 0x03;

/// Log pages (figure 191; NVMe over Fabrics 1.1 section 5.3).
const LOG_ERROR: u8 = 0x01;
const LOG_SMART: u8 = 0x02;
const LOG_FIRMWARE: u8 = 0x03;
const LOG_CHANGED_NS: u8 = 0x04;
const LOG_DISCOVERY: u8 = 0x70;
/// Invalid Log Page (command specific, figure 130).
const SC_INVALID_LOG_PAGE: u8 = 0x09;

/// What an admin command does to its queue.
pub(crate) enum AdminOutcome {
    /// Answer now, with controller-to-host data.
    Reply {
        status: Status,
        dw0: u32,
        data: Vec<u8>,
    },
    /// Hold the command (AER).
    Hold,
}

fn ok(data: Vec<u8>) -> AdminOutcome {
    AdminOutcome::Reply {
        status: Status::SUCCESS,
        dw0: 0,
        data,
    }
}

fn ok_dw0(dw0: u32) -> AdminOutcome {
    AdminOutcome::Reply {
        status: Status::SUCCESS,
        dw0,
        data: Vec::new(),
    }
}

fn err(sct_: u8, sc_: u8) -> AdminOutcome {
    AdminOutcome::Reply {
        status: Status::new(sct_, sc_),
        dw0: 0,
        data: Vec::new(),
    }
}

/// Run one admin command (`data`: its host-to-controller data).
pub(crate) fn execute(c: &Ctrlr, sqe: &Sqe, _data: &[u8]) -> AdminOutcome {
    match sqe.opcode() {
        admin_opc::IDENTIFY => identify(c, sqe),
        admin_opc::GET_FEATURES => get_features(c, sqe),
        admin_opc::SET_FEATURES => set_features(c, sqe),
        admin_opc::GET_LOG_PAGE => get_log_page(c, sqe),
        KEEP_ALIVE => ok_dw0(0),
        ASYNC_EVENT_REQUEST => AdminOutcome::Hold,
        _ => err(sct::GENERIC, generic::INVALID_OPCODE),
    }
}

/// The Identify Controller data of `c` (NVMe 1.4 figure 247, the fabrics fields of
/// NVMe over Fabrics 1.1 figure 28).
pub(crate) fn identify_controller(c: &Ctrlr) -> Vec<u8> {
    let s = &c.subsys;
    let mut id = zeroed::<IdentifyController>();
    fill_str(&mut id.sn, &s.serial, b' ');
    fill_str(&mut id.mn, &s.model, b' ');
    fill_str(&mut id.fr, env!("CARGO_PKG_VERSION"), b' ');
    id.rab = 6;
    // MDTS in units of the minimum page size (4 KiB).
    id.mdts = (c.opts.max_io_size / 4096).max(1).ilog2() as u8;
    id.cntlid = c.cntlid;
    id.ver = VERSION;
    id.cntrltype = if s.is_discovery() { 2 } else { 1 };
    // Namespace Attribute Notices (the other events are not sent).
    id.oaes = if s.is_discovery() { 0 } else { AEN_NS_ATTR };
    id.acl = 3;
    id.aerl = 3;
    id.frmw = 0x3;
    // Extended data for Get Log Page (64-bit offsets, needed by long discovery logs).
    id.lpa = 0x04;
    id.elpe = 127;
    id.sqes = 0x66;
    id.cqes = 0x44;
    id.maxcmd = c.opts.max_queue_depth;
    id.nn = s.max_namespaces;
    id.oncs = if s.is_discovery() {
        0
    } else {
        oncs::DSM | oncs::WRITE_ZEROES
    };
    id.vwc = u8::from(!s.is_discovery());
    // SGLs supported (bits 1:0 = 01b), SGL offsets (bit 20).
    id.sgls = 0x1 | 1 << 20;
    fill_str(&mut id.subnqn, &s.nqn, 0);
    let mut b = as_bytes(&*id).to_vec();
    // KAS (offset 320): keep-alive granularity in 100 ms units.
    b[320..322].copy_from_slice(&10u16.to_le_bytes());
    // Fabrics: IOCCSZ and IORCSZ (16-byte units), ICDOFF, FCATT, MSDBD.
    let ioccsz = (64 + c.opts.in_capsule_data_size) / 16;
    b[1792..1796].copy_from_slice(&ioccsz.to_le_bytes());
    b[1796..1800].copy_from_slice(&1u32.to_le_bytes());
    b[1800..1802].copy_from_slice(&0u16.to_le_bytes());
    b[1802] = 0;
    b[1803] = 1;
    b
}

fn identify(c: &Ctrlr, sqe: &Sqe) -> AdminOutcome {
    let cns_ = sqe.cdw10 & 0xff;
    let nsid = sqe.nsid;
    let s = &c.subsys;
    match cns_ {
        cns::CONTROLLER => ok(identify_controller(c)),
        cns::NAMESPACE => {
            if nsid == 0 || nsid > s.max_namespaces {
                return err(sct::GENERIC, generic::INVALID_NAMESPACE);
            }
            let mut id = zeroed::<IdentifyNamespace>();
            if let Some(ns) = s.namespace(nsid) {
                id.nsze = ns.num_blocks;
                id.ncap = ns.num_blocks;
                id.nuse = ns.num_blocks;
                id.nlbaf = 0;
                id.flbas = 0;
                id.lbaf[0] = LbaFormat(ns.block_size.ilog2() << 16);
                id.nguid = ns.uuid.0;
            }
            ok(as_bytes(&*id).to_vec())
        }
        cns::ACTIVE_NS_LIST => {
            let mut out = Vec::with_capacity(4096);
            for ns in s.namespaces() {
                if ns.nsid > nsid && out.len() < 4096 {
                    out.extend_from_slice(&ns.nsid.to_le_bytes());
                }
            }
            out.resize(4096, 0);
            ok(out)
        }
        CNS_NS_DESCRIPTORS => {
            let Some(ns) = s.namespace(nsid) else {
                return err(sct::GENERIC, generic::INVALID_NAMESPACE);
            };
            let mut out = Vec::with_capacity(4096);
            // NGUID (type 2) and UUID (type 3), 16 bytes each.
            for t in [2u8, 3] {
                out.extend_from_slice(&[t, 16, 0, 0]);
                out.extend_from_slice(&ns.uuid.0);
            }
            out.resize(4096, 0);
            ok(out)
        }
        _ => err(sct::GENERIC, generic::INVALID_FIELD),
    }
}

fn get_features(c: &Ctrlr, sqe: &Sqe) -> AdminOutcome {
    let fid = sqe.cdw10 as u8;
    match fid {
        FEAT_NUM_QUEUES => {
            let n = c.io_queues() - 1;
            ok_dw0(n | n << 16)
        }
        FEAT_KEEP_ALIVE_TIMER => ok_dw0(c.kato_ms()),
        f if FEAT_STORED.contains(&f) => ok_dw0(c.feature(f)),
        _ => err(sct::GENERIC, generic::INVALID_FIELD),
    }
}

fn set_features(c: &Ctrlr, sqe: &Sqe) -> AdminOutcome {
    let fid = sqe.cdw10 as u8;
    let v = sqe.cdw11;
    match fid {
        FEAT_NUM_QUEUES => {
            let (nsq, ncq) = (v & 0xffff, v >> 16);
            if nsq == 0xffff || ncq == 0xffff {
                return err(sct::GENERIC, generic::INVALID_FIELD);
            }
            let n = c.grant_io_queues(nsq.min(ncq) + 1) - 1;
            ok_dw0(n | n << 16)
        }
        FEAT_KEEP_ALIVE_TIMER => {
            c.set_kato_ms(v);
            c.keep_alive();
            ok_dw0(0)
        }
        FEAT_ASYNC_EVENT_CONFIG => {
            c.set_feature(fid, v);
            ok_dw0(0)
        }
        f if FEAT_STORED.contains(&f) => {
            c.set_feature(f, v);
            ok_dw0(0)
        }
        _ => err(sct::COMMAND_SPECIFIC, specific::FEATURE_NOT_CHANGEABLE),
    }
}

/// The discovery log page as `hostnqn` sees it (NVMe over Fabrics 1.1 section 5.3):
/// one entry per listen address of every NVM subsystem the host may use.
pub(crate) fn discovery_log(hostnqn: &str) -> Vec<u8> {
    let t = tgt();
    let mut entries = Vec::new();
    for s in t.subsystems() {
        if s.is_discovery() || !s.host_allowed(hostnqn) {
            continue;
        }
        for (i, a) in s.listeners().iter().enumerate() {
            let mut e = zeroed::<DiscoveryLogEntry>();
            e.trtype = TRTYPE_TCP;
            e.adrfam = if a.is_ipv4() {
                ADRFAM_IPV4
            } else {
                ADRFAM_IPV6
            };
            e.subtype = SUBTYPE_NVM;
            e.treq = TREQ_SECURE_CHANNEL_NOT_REQUIRED;
            e.portid = i as u16;
            e.cntlid = 0xffff;
            e.asqsz = 32;
            fill_str(&mut e.trsvcid, &a.port().to_string(), b' ');
            fill_str(&mut e.subnqn, &s.nqn, 0);
            fill_str(&mut e.traddr, &a.ip().to_string(), b' ');
            entries.push(e);
        }
    }
    let mut h = zeroed::<DiscoveryLogHeader>();
    h.genctr = t.genctr.load(std::sync::atomic::Ordering::Relaxed);
    h.numrec = entries.len() as u64;
    let mut out = Vec::with_capacity(1024 * (entries.len() + 1));
    put(&mut out, &*h);
    for e in &entries {
        put(&mut out, &**e);
    }
    out
}

fn get_log_page(c: &Ctrlr, sqe: &Sqe) -> AdminOutcome {
    let lid = sqe.cdw10 as u8;
    let numd = (u64::from(sqe.cdw10 >> 16) | (u64::from(sqe.cdw11 & 0xffff) << 16)) + 1;
    let len = (numd * 4) as usize;
    let off = u64::from(sqe.cdw12) | (u64::from(sqe.cdw13) << 32);
    if off % 4 != 0 || len > c.opts.max_io_size as usize {
        return err(sct::GENERIC, generic::INVALID_FIELD);
    }
    let page: Vec<u8> = match lid {
        LOG_DISCOVERY => discovery_log(&c.hostnqn),
        LOG_ERROR => vec![0; 64],
        LOG_SMART => vec![0; 512],
        LOG_FIRMWARE => {
            let mut v = vec![0u8; 512];
            v[0] = 1; // active slot 1
            fill_str(&mut v[8..16], env!("CARGO_PKG_VERSION"), b' ');
            v
        }
        // RAE: Retain Asynchronous Event (cdw10 bit 15).
        LOG_CHANGED_NS => c.changed_ns_log(sqe.cdw10 & 1 << 15 != 0),
        _ => return err(sct::COMMAND_SPECIFIC, SC_INVALID_LOG_PAGE),
    };
    let mut out = vec![0u8; len];
    if let Ok(o) = usize::try_from(off) {
        if o < page.len() {
            let n = (page.len() - o).min(len);
            out[..n].copy_from_slice(&page[o..o + n]);
        }
    }
    ok(out)
}
