//! NVM I/O commands mapped to bdev I/O (NVMe 1.4 NVM command set, section 6): Read,
//! Write, Flush, Write Zeroes, Dataset Management (deallocate ranges become unmaps).
//! Submitted on the poll group's channel of the namespace; completions go to the
//! group's list and from there to the connection.

use std::sync::{Arc, Mutex};

use bdev::IoStatus;
use nvme::spec::{generic, io_opc, media, sct, DsmRange, Sqe, Status, DSM_ATTR_DEALLOCATE};

use super::completion::{GroupCtx, IoDone};
use super::ctrlr::Ctrlr;
use super::CmdToken;
use crate::spec::bytes::read;
use crate::spec::fabrics::sqe_sgl;

/// What an I/O command did.
pub(crate) enum IoOutcome {
    /// Finished at once with this status.
    Reply(Status),
    /// At the bdev; an [`IoDone`] follows.
    Submitted,
}

fn st(sc_: u8) -> IoOutcome {
    IoOutcome::Reply(Status::new(sct::GENERIC, sc_))
}

fn map_status(s: IoStatus) -> Status {
    match s {
        IoStatus::Success => Status::SUCCESS,
        IoStatus::Miscompare => Status::new(sct::MEDIA, media::COMPARE_FAILURE),
        IoStatus::Aborted => Status::new(sct::GENERIC, generic::ABORT_REQUESTED),
        _ => Status::new(sct::GENERIC, generic::INTERNAL_ERROR),
    }
}

/// Submit an I/O command of connection `conn`.
pub(crate) fn submit(
    c: &Ctrlr,
    sqe: &Sqe,
    data: Vec<u8>,
    g: &mut GroupCtx,
    conn: u64,
    token: CmdToken,
) -> IoOutcome {
    let Some(ns) = c.subsys.namespace(sqe.nsid) else {
        return st(generic::INVALID_NAMESPACE);
    };
    let done = g.done.clone();
    let Some(ch) = g.channel(&ns) else {
        return st(generic::INTERNAL_ERROR);
    };
    let cid = sqe.cid();
    let finish = move |s: IoStatus, data: Vec<u8>, token: CmdToken| {
        done.lock().unwrap_or_else(|e| e.into_inner()).push(IoDone {
            conn,
            cid,
            status: map_status(s),
            data,
            _token: token,
        });
    };
    let slba = u64::from(sqe.cdw10) | (u64::from(sqe.cdw11) << 32);
    let nlb = u64::from(sqe.cdw12 & 0xffff) + 1;
    let ranged = matches!(
        sqe.opcode(),
        io_opc::READ | io_opc::WRITE | io_opc::WRITE_ZEROES
    );
    if ranged && slba.checked_add(nlb).is_none_or(|e| e > ns.num_blocks) {
        return st(generic::LBA_OUT_OF_RANGE);
    }
    let bytes = (nlb * u64::from(ns.block_size)) as usize;
    let r = match sqe.opcode() {
        io_opc::READ => {
            let (_, _, sgl_len) = sqe_sgl(sqe);
            if sgl_len as usize != bytes {
                return st(0x0f);
            }
            if bytes > c.opts.max_io_size as usize {
                return st(generic::INVALID_FIELD);
            }
            ns.desc
                .read_buf(ch, vec![0u8; bytes], slba, nlb, move |s, b| {
                    finish(
                        s,
                        if s == IoStatus::Success {
                            b
                        } else {
                            Vec::new()
                        },
                        token,
                    )
                })
        }
        io_opc::WRITE => {
            if data.len() != bytes {
                return st(0x0f);
            }
            ns.desc.write_buf(ch, data, slba, nlb, move |s, _b| {
                finish(s, Vec::new(), token)
            })
        }
        io_opc::FLUSH => {
            if !ns.flush {
                return IoOutcome::Reply(Status::SUCCESS);
            }
            ns.desc
                .flush(ch, 0, ns.num_blocks, move |s| finish(s, Vec::new(), token))
        }
        io_opc::WRITE_ZEROES => {
            if !ns.write_zeroes {
                return st(generic::INVALID_OPCODE);
            }
            ns.desc
                .write_zeroes(ch, slba, nlb, move |s| finish(s, Vec::new(), token))
        }
        io_opc::DATASET_MANAGEMENT => {
            let nr = (sqe.cdw10 & 0xff) as usize + 1;
            if data.len() < nr * 16 {
                return st(0x0f);
            }
            if sqe.cdw11 & DSM_ATTR_DEALLOCATE == 0 || !ns.unmap {
                return IoOutcome::Reply(Status::SUCCESS);
            }
            let ranges: Vec<DsmRange> = (0..nr)
                .filter_map(|i| read::<DsmRange>(&data[i * 16..]))
                .filter(|r| r.nlb > 0)
                .collect();
            if ranges.iter().any(|r| {
                r.slba
                    .checked_add(u64::from(r.nlb))
                    .is_none_or(|e| e > ns.num_blocks)
            }) {
                return st(generic::LBA_OUT_OF_RANGE);
            }
            if ranges.is_empty() {
                return IoOutcome::Reply(Status::SUCCESS);
            }
            // One unmap per range; the last to finish answers with the worst status.
            let state = Arc::new(Mutex::new((ranges.len(), IoStatus::Success, Some(token))));
            let finish = Arc::new(Mutex::new(Some(finish)));
            for r in &ranges {
                let (s2, f2) = (state.clone(), finish.clone());
                let res = ns.desc.unmap(ch, r.slba, u64::from(r.nlb), move |s| {
                    let mut g = s2.lock().unwrap_or_else(|e| e.into_inner());
                    g.0 -= 1;
                    if s != IoStatus::Success {
                        g.1 = s;
                    }
                    if g.0 == 0 {
                        let f = f2.lock().unwrap_or_else(|e| e.into_inner()).take();
                        if let (Some(f), Some(t)) = (f, g.2.take()) {
                            f(g.1, Vec::new(), t);
                        }
                    }
                });
                if res.is_err() {
                    let mut g = state.lock().unwrap_or_else(|e| e.into_inner());
                    g.0 -= 1;
                    g.1 = IoStatus::Failed;
                    if g.0 == 0 {
                        let f = finish.lock().unwrap_or_else(|e| e.into_inner()).take();
                        if let (Some(f), Some(t)) = (f, g.2.take()) {
                            f(g.1, Vec::new(), t);
                        }
                    }
                }
            }
            return IoOutcome::Submitted;
        }
        _ => return st(generic::INVALID_OPCODE),
    };
    match r {
        Ok(()) => IoOutcome::Submitted,
        Err(e) => {
            eal::log_err!("nvmf: I/O to bdev '{}' not submitted: {e}", ns.bdev_name);
            st(generic::INTERNAL_ERROR)
        }
    }
}
