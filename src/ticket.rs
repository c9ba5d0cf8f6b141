//! Invite tickets: one string that carries what another person needs to
//! join a room: the room's name, whether it is encrypted (never the
//! passphrase), the inviting node's addresses (relay addresses included),
//! and when it was made. `p2pchat1` + base58 of a small binary form with a
//! checksum, so a mistyped or cut ticket is told as such, not misread.
//!
//! Binary form, version 1: `1`, created (u64 BE, seconds since the epoch),
//! flags (bit 0: encrypted), room (u8 length + UTF-8), address count (u8),
//! each address (u16 BE length + multiaddr bytes), then the first 4 bytes of
//! the SHA-256 of all that.

use libp2p::Multiaddr;
use sha2::{Digest, Sha256};

/// What every ticket starts with; room names may not.
pub const PREFIX: &str = "p2pchat1";
/// How long a ticket is good for.
pub const VALID_SECS: u64 = 30 * 24 * 3600;
/// Addresses a ticket carries at most.
pub const MAX_ADDRS: usize = 8;
/// The longest ticket read.
const MAX_LEN: usize = 4096;
const VERSION: u8 = 1;
const CHECKSUM: usize = 4;
/// Clocks differ: a ticket made up to this far in our future is fine.
const SKEW_SECS: u64 = 24 * 3600;

/// A decoded ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The room to join.
    pub room: String,
    /// Joined with a passphrase (which the ticket does not carry).
    pub encrypted: bool,
    /// Where the inviting node is reached, each ending in `/p2p/ID`.
    pub addrs: Vec<Multiaddr>,
    /// When it was made, seconds since the epoch.
    pub created: u64,
}

/// Why a string is not a usable ticket. One line each.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    /// Not a ticket at all, or damaged.
    #[error("not a valid invite ticket ({0}): copy the whole string starting with {PREFIX}")]
    Malformed(&'static str),
    /// Too old.
    #[error("this invite ticket expired {days} day(s) ago: ask for a new one (/invite)")]
    Expired {
        /// Days since it expired.
        days: u64,
    },
    /// Made in the future by more than clocks differ.
    #[error("this invite ticket was made in the future: check this machine's clock")]
    Future,
}

impl Ticket {
    /// A ticket made now.
    pub fn new(room: String, encrypted: bool, addrs: Vec<Multiaddr>) -> Ticket {
        Ticket {
            room,
            encrypted,
            addrs,
            created: now_secs(),
        }
    }

    /// When it stops being good, seconds since the epoch.
    pub fn expires(&self) -> u64 {
        self.created.saturating_add(VALID_SECS)
    }

    /// The ticket as one string.
    pub fn encode(&self) -> String {
        let mut b = vec![VERSION];
        b.extend_from_slice(&self.created.to_be_bytes());
        b.push(u8::from(self.encrypted));
        let room = self.room.as_bytes();
        b.push(u8::try_from(room.len()).unwrap_or(u8::MAX));
        b.extend_from_slice(&room[..room.len().min(usize::from(u8::MAX))]);
        let addrs: Vec<Vec<u8>> = self
            .addrs
            .iter()
            .take(MAX_ADDRS)
            .map(|a| a.to_vec())
            .filter(|a| a.len() <= usize::from(u16::MAX))
            .collect();
        b.push(addrs.len() as u8);
        for a in addrs {
            b.extend_from_slice(&(a.len() as u16).to_be_bytes());
            b.extend_from_slice(&a);
        }
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum[..CHECKSUM]);
        format!("{PREFIX}{}", bs58::encode(b).into_string())
    }

    /// Reads a ticket, checking it is whole and current at `now` (seconds
    /// since the epoch).
    pub fn parse(s: &str, now: u64) -> Result<Ticket, TicketError> {
        let s = s.trim();
        let body = s
            .strip_prefix(PREFIX)
            .ok_or(TicketError::Malformed("it does not start with p2pchat1"))?;
        if s.len() > MAX_LEN {
            return Err(TicketError::Malformed("too long"));
        }
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|_| TicketError::Malformed("a character that is not in a ticket"))?;
        let (data, sum) = bytes
            .split_at_checked(bytes.len().saturating_sub(CHECKSUM))
            .ok_or(TicketError::Malformed("too short"))?;
        if data.is_empty() || Sha256::digest(data)[..CHECKSUM] != *sum {
            return Err(TicketError::Malformed("its checksum does not match"));
        }
        let mut r = Reader(data);
        if r.u8()? != VERSION {
            return Err(TicketError::Malformed(
                "made by a newer version of p2p-chat",
            ));
        }
        let created = u64::from_be_bytes(r.take(8)?.try_into().map_err(|_| SHORT)?);
        let encrypted = r.u8()? & 1 == 1;
        let len = usize::from(r.u8()?);
        let room = std::str::from_utf8(r.take(len)?)
            .map_err(|_| TicketError::Malformed("the room name is not UTF-8"))?
            .to_owned();
        crate::limits::own_room(&room)
            .map_err(|_| TicketError::Malformed("the room name is not one we can join"))?;
        let count = usize::from(r.u8()?);
        if count > MAX_ADDRS {
            return Err(TicketError::Malformed("too many addresses"));
        }
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes(
                r.take(2)?.try_into().map_err(|_| SHORT)?,
            ));
            let addr = Multiaddr::try_from(r.take(len)?.to_vec())
                .map_err(|_| TicketError::Malformed("an address is damaged"))?;
            addrs.push(addr);
        }
        if !r.0.is_empty() {
            return Err(TicketError::Malformed("bytes after the end"));
        }
        if addrs.is_empty() {
            return Err(TicketError::Malformed("it has no address to dial"));
        }
        if created > now.saturating_add(SKEW_SECS) {
            return Err(TicketError::Future);
        }
        let ticket = Ticket {
            room,
            encrypted,
            addrs,
            created,
        };
        if now > ticket.expires() {
            return Err(TicketError::Expired {
                days: (now - ticket.expires()) / 86_400,
            });
        }
        Ok(ticket)
    }
}

/// Reads a ticket as of now.
impl std::str::FromStr for Ticket {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Ticket, TicketError> {
        Ticket::parse(s, now_secs())
    }
}

fn now_secs() -> u64 {
    crate::protocol::now_ms() / 1000
}

/// Whether a typed word is meant as a ticket.
pub fn looks_like_ticket(s: &str) -> bool {
    s.trim().starts_with(PREFIX)
}

const SHORT: TicketError = TicketError::Malformed("it is cut short");

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TicketError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(SHORT)?;
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, TicketError> {
        Ok(self.take(1)?[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_780_000_000;

    fn ticket() -> Ticket {
        Ticket {
            room: "plans".into(),
            encrypted: true,
            addrs: vec![
                "/ip4/203.0.113.10/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit/p2p/12D3KooWHtAp4wC7SBU17VuwMHeTkUAdocD6U7tT7R8NgYeQbZTr"
                    .parse()
                    .expect("valid"),
                "/ip4/192.168.1.2/udp/4001/quic-v1/p2p/12D3KooWHtAp4wC7SBU17VuwMHeTkUAdocD6U7tT7R8NgYeQbZTr"
                    .parse()
                    .expect("valid"),
            ],
            created: NOW,
        }
    }

    #[test]
    fn a_ticket_reads_back_as_written() {
        let t = ticket();
        let s = t.encode();
        assert!(s.starts_with(PREFIX) && looks_like_ticket(&s), "{s}");
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
        assert_eq!(Ticket::parse(&format!("  {s}\n"), NOW + 3600), Ok(t));
    }

    #[test]
    fn damaged_expired_and_future_tickets_are_told_apart() {
        let s = ticket().encode();
        let cut = &s[..s.len() - 5];
        assert!(matches!(
            Ticket::parse(cut, NOW),
            Err(TicketError::Malformed(_))
        ));
        let mut typo: Vec<char> = s.chars().collect();
        let i = typo.len() / 2;
        typo[i] = if typo[i] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        assert_eq!(
            Ticket::parse(&typo, NOW),
            Err(TicketError::Malformed("its checksum does not match"))
        );
        assert!(matches!(
            Ticket::parse("plans", NOW),
            Err(TicketError::Malformed(_))
        ));
        assert!(matches!(
            Ticket::parse("p2pchat10OIl", NOW),
            Err(TicketError::Malformed(_))
        ));
        assert_eq!(
            Ticket::parse(&s, NOW + VALID_SECS + 3 * 86_400),
            Err(TicketError::Expired { days: 3 })
        );
        assert!(Ticket::parse(&s, NOW + VALID_SECS).is_ok());
        assert_eq!(
            Ticket::parse(&s, NOW - SKEW_SECS - 1),
            Err(TicketError::Future)
        );
        let err = Ticket::parse(cut, NOW).unwrap_err().to_string();
        assert!(err.contains("p2pchat1") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn a_ticket_without_addresses_is_refused() {
        let mut t = ticket();
        t.addrs.clear();
        assert_eq!(
            Ticket::parse(&t.encode(), NOW),
            Err(TicketError::Malformed("it has no address to dial"))
        );
    }
}
