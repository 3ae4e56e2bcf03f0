//! A minimal guest for driving the host directly: messages built with `vmbus_driver::msg::encode`,
//! replies taken from the SynIC slot with `vmbus_driver::hv::consume_message` and decoded, rings
//! reached through an independent guest-side `RingMem` over the test's pages.
#![allow(dead_code)]

pub mod stor;
pub mod svc;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{Ordering, fence};

use hv_host::{GuestMemError, GuestMemory, GuestPort, Host, HostConfig};
use vmbus_driver::gpadl::gpadl_messages;
use vmbus_driver::guid::Guid;
use vmbus_driver::hv::{HvMessageType, HvStatus, consume_message};
use vmbus_driver::ids::{ConnectionId, GpadlId, RelId, VpIndex};
use vmbus_driver::msg::{self, ChannelMessage, ContactTarget, InitiateContact, OfferChannel};
use vmbus_driver::ring::{Control, RingMem};
use vmbus_driver::version::{FeatureFlags, Version};

pub const PAGE: usize = 4096;
/// Frame number of the first test page.
pub const BASE_PFN: u64 = 0x1000;

/// Guest memory: pages shared between the test's guest side and the host's seam.
#[derive(Clone)]
pub struct Mem(pub Rc<RefCell<Vec<[u8; PAGE]>>>);

impl Mem {
    pub fn new(pages: usize) -> Self {
        Mem(Rc::new(RefCell::new(vec![[0u8; PAGE]; pages])))
    }
    pub fn pfn(&self, i: usize) -> u64 {
        BASE_PFN + i as u64
    }
    pub fn u32_at(&self, page: usize, off: usize) -> u32 {
        let m = self.0.borrow();
        u32::from_le_bytes(m[page][off..off + 4].try_into().unwrap())
    }
    pub fn set_u32(&self, page: usize, off: usize, v: u32) {
        self.0.borrow_mut()[page][off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
}

impl GuestMemory for Mem {
    fn read(&mut self, pfn: u64, offset: usize, buf: &mut [u8]) -> Result<(), GuestMemError> {
        let m = self.0.borrow();
        let page = pfn
            .checked_sub(BASE_PFN)
            .and_then(|i| m.get(i as usize))
            .ok_or(GuestMemError::NoSuchPage(pfn))?;
        let src = page
            .get(offset..offset + buf.len())
            .ok_or(GuestMemError::OutOfPage {
                offset,
                len: buf.len(),
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write(&mut self, pfn: u64, offset: usize, data: &[u8]) -> Result<(), GuestMemError> {
        let mut m = self.0.borrow_mut();
        let page = pfn
            .checked_sub(BASE_PFN)
            .and_then(|i| m.get_mut(i as usize))
            .ok_or(GuestMemError::NoSuchPage(pfn))?;
        let dst = page
            .get_mut(offset..offset + data.len())
            .ok_or(GuestMemError::OutOfPage {
                offset,
                len: data.len(),
            })?;
        dst.copy_from_slice(data);
        Ok(())
    }
}

/// The guest's view of one ring: pages `first..first + pages` of `mem` (header first).
pub struct GuestRing {
    pub mem: Mem,
    pub first: usize,
    pub pages: usize,
}

impl RingMem for GuestRing {
    fn data_size(&self) -> u32 {
        ((self.pages - 1) * PAGE) as u32
    }
    fn load(&self, word: Control, _: Ordering) -> u32 {
        self.mem.u32_at(self.first, word.offset())
    }
    fn store(&self, word: Control, value: u32, _: Ordering) {
        self.mem.set_u32(self.first, word.offset(), value)
    }
    fn swap(&self, word: Control, value: u32, o: Ordering) -> u32 {
        let old = self.load(word, o);
        self.store(word, value, o);
        old
    }
    fn fence(&self, order: Ordering) {
        fence(order)
    }
    fn read_data(&self, offset: u32, buf: &mut [u8]) {
        let m = self.mem.0.borrow();
        for (i, b) in buf.iter_mut().enumerate() {
            let at = offset as usize + i;
            *b = m[self.first + 1 + at / PAGE][at % PAGE];
        }
    }
    fn write_data(&self, offset: u32, data: &[u8]) {
        let mut m = self.mem.0.borrow_mut();
        for (i, b) in data.iter().enumerate() {
            let at = offset as usize + i;
            m[self.first + 1 + at / PAGE][at % PAGE] = *b;
        }
    }
}

/// A received message: the decoded value and the raw slot.
#[derive(Debug, Clone)]
pub struct Got {
    pub slot_size: u8,
    pub bytes: Vec<u8>,
    pub msg: Option<ChannelMessage>,
}

/// The test guest.
pub struct Guest {
    pub host: Box<Host>,
    pub mem: Mem,
    /// Connection for control messages after the handshake.
    pub conn: ConnectionId,
    pub version: Option<Version>,
}

impl Guest {
    pub fn new(config: HostConfig, pages: usize) -> Self {
        Guest {
            host: Box::new(Host::new(config)),
            mem: Mem::new(pages),
            conn: ConnectionId(1),
            version: None,
        }
    }

    /// Encodes and posts `m` on `conn`.
    pub fn post_on(&mut self, conn: ConnectionId, m: &ChannelMessage) -> HvStatus {
        let mut buf = [0u8; 240];
        let n = msg::encode(m, &mut buf).expect("encode");
        self.host
            .post_message(conn, HvMessageType::VMBUS, &buf[..n])
    }

    /// Posts on the negotiated connection and requires SUCCESS.
    pub fn post(&mut self, m: &ChannelMessage) {
        let c = self.conn;
        assert_eq!(self.post_on(c, m), HvStatus::SUCCESS, "posting {m:?}");
    }

    /// Consumes every message the host has for us (copy, clear, EOM when pending, as a guest
    /// does), decoding each with the negotiated version (or `decode_version`).
    pub fn take_with(&mut self, decode_version: Option<Version>) -> Vec<Got> {
        let mut out = Vec::new();
        loop {
            let slot = self.host.synic().read_slot();
            let r = consume_message(&mut GuestPort::new(&mut self.host), 2);
            match r {
                Ok(Some(m)) => {
                    let bytes = m.payload().to_vec();
                    let msg = msg::decode(&bytes, decode_version).ok();
                    out.push(Got {
                        slot_size: slot[4],
                        bytes,
                        msg,
                    });
                }
                Ok(None) => break,
                Err(_) => out.push(Got {
                    slot_size: slot[4],
                    bytes: slot[16..].to_vec(),
                    msg: None,
                }),
            }
        }
        out
    }

    pub fn take(&mut self) -> Vec<Got> {
        let v = self.version;
        self.take_with(v)
    }

    /// Decoded messages only.
    pub fn msgs(&mut self) -> Vec<ChannelMessage> {
        self.take()
            .into_iter()
            .map(|g| g.msg.expect("decodable"))
            .collect()
    }

    /// INITIATE_CONTACT for `v` on the connection the protocol requires; returns the reply.
    pub fn contact(&mut self, v: Version) -> msg::VersionResponse {
        let m = initiate_contact(v);
        let conn = v.initiate_contact_connection_id();
        assert_eq!(self.post_on(conn, &m), HvStatus::SUCCESS);
        let got = self.take_with(Some(v));
        assert_eq!(got.len(), 1, "one VERSION_RESPONSE: {got:?}");
        let Some(ChannelMessage::VersionResponse(r)) = got[0].msg else {
            panic!("not a VERSION_RESPONSE: {got:?}");
        };
        if r.is_success(v) {
            self.version = Some(v);
            self.conn = if v.uses_msg_sint() {
                r.msg_conn_id
            } else {
                ConnectionId(1)
            };
        }
        r
    }

    /// INITIATE_CONTACT for `v`; whether the host accepted it.
    pub fn accepted(&mut self, v: Version) -> bool {
        self.contact(v).is_success(v)
    }

    /// Handshake at `v` plus REQUESTOFFERS; returns the offers (ALLOFFERS_DELIVERED checked).
    pub fn connect(&mut self, v: Version) -> Vec<OfferChannel> {
        assert!(self.accepted(v));
        self.post(&ChannelMessage::RequestOffers);
        let msgs = self.msgs();
        assert_eq!(msgs.last(), Some(&ChannelMessage::AllOffersDelivered));
        msgs.iter()
            .filter_map(|m| match m {
                ChannelMessage::OfferChannel(o) => Some(*o),
                _ => None,
            })
            .collect()
    }

    /// GPADL_HEADER + bodies over pages `first..first + n` of the test memory.
    pub fn create_gpadl(&mut self, relid: RelId, id: GpadlId, first: usize, n: usize) {
        let pfns: Vec<u64> = (first..first + n).map(|i| self.mem.pfn(i)).collect();
        for m in gpadl_messages(relid, id, &pfns).unwrap() {
            self.post(&m);
        }
    }

    /// A GPADL over `out + inn` pages from `first` and OPENCHANNEL; returns the result status.
    pub fn open(&mut self, relid: RelId, id: GpadlId, first: usize, out: usize, inn: usize) -> u32 {
        self.create_gpadl(relid, id, first, out + inn);
        let created = self.msgs();
        assert!(
            matches!(created[..], [ChannelMessage::GpadlCreated(c)] if c.creation_status == 0 && c.gpadl == id),
            "{created:?}"
        );
        self.post(&open_channel(relid, id, out as u32));
        match self.msgs()[..] {
            [ChannelMessage::OpenChannelResult(r)] => {
                assert_eq!((r.child_relid, r.openid), (relid, relid.0 + 100));
                r.status
            }
            ref other => panic!("{other:?}"),
        }
    }
}

pub fn initiate_contact(v: Version) -> ChannelMessage {
    ChannelMessage::InitiateContact(InitiateContact {
        version_requested: v,
        target_vcpu: VpIndex(0),
        target: if v.uses_msg_sint() {
            ContactTarget::MessageSint {
                msg_sint: 2,
                msg_vtl: 0,
                feature_flags: FeatureFlags::NONE,
            }
        } else {
            ContactTarget::InterruptPage(0)
        },
        monitor_page1: 0,
        monitor_page2: 0,
        client_id: None,
    })
}

pub fn open_channel(relid: RelId, gpadl: GpadlId, downstream: u32) -> ChannelMessage {
    ChannelMessage::OpenChannel(msg::OpenChannel {
        child_relid: relid,
        openid: relid.0 + 100,
        ring_gpadl: gpadl,
        target_vp: VpIndex(0),
        downstream_ring_page_offset: downstream,
        userdata: [0; 120],
        signal: None,
    })
}

pub fn class(n: u8) -> Guid {
    Guid::from_fields(0x1000_0000 + u32::from(n), 1, 2, [3, 4, 5, 6, 7, 8, 9, n])
}

pub fn instance(n: u8) -> Guid {
    Guid::from_fields(0x2000_0000 + u32::from(n), 5, 6, [7; 8])
}

pub fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
