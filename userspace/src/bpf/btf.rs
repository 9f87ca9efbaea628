//! Just enough of the kernel's BTF to find struct member offsets. Rust BPF programs have no
//! CO-RE relocations, so the loader reads the running kernel's layout here and hands the
//! offsets to the programs as read-only globals.
use std::{collections::HashMap, path::Path};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("kernel BTF unreadable: {0}")]
    Read(String),
    #[error("kernel BTF malformed at byte {0}")]
    Malformed(usize),
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF struct {0} has no member {1}")]
    NoMember(String, String),
}

struct Composite {
    name: u32,
    /// (name offset, type id, byte offset)
    members: Vec<(u32, u32, u32)>,
}

/// Named members of a struct, with the members of its anonymous structs and unions
/// (`union { struct { vm_start; vm_end; }; }`) lifted to the outer level.
fn flatten(
    all: &[Option<Composite>],
    strings: &[u8],
    c: &Composite,
    base: u32,
    out: &mut HashMap<String, u32>,
    depth: u32,
) {
    for &(name, ty, off) in &c.members {
        if name != 0 {
            out.entry(str_at(strings, name)).or_insert(base + off);
        } else if depth < 8 {
            if let Some(Some(inner)) = all.get(ty as usize) {
                flatten(all, strings, inner, base + off, out, depth + 1);
            }
        }
    }
}

/// Member byte offsets of every named struct.
#[derive(Debug, Default)]
pub struct Layouts {
    structs: HashMap<String, HashMap<String, u32>>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, BtfError> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or(BtfError::Malformed(at))
}

fn str_at(strings: &[u8], off: u32) -> String {
    let s = strings.get(off as usize..).unwrap_or(&[]);
    let end = s.iter().position(|b| *b == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).into_owned()
}

impl Layouts {
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let p = Path::new("/sys/kernel/btf/vmlinux");
        let data = std::fs::read(p).map_err(|e| BtfError::Read(format!("{}: {e}", p.display())))?;
        Self::parse(&data)
    }

    pub fn parse(b: &[u8]) -> Result<Self, BtfError> {
        if b.len() < 24 || b[0..2] != [0x9f, 0xeb] {
            return Err(BtfError::Malformed(0));
        }
        let hdr = u32_at(b, 4)? as usize;
        let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
        let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
        let types = b.get(hdr + type_off..hdr + type_off + type_len).ok_or(BtfError::Malformed(hdr))?;
        let strings = b.get(hdr + str_off..hdr + str_off + str_len).ok_or(BtfError::Malformed(hdr))?;
        // Type ids start at 1; keep struct/union members (name, type id, byte offset).
        let mut all: Vec<Option<Composite>> = vec![None];
        let mut at = 0;
        while at + 12 <= types.len() {
            let name = u32_at(types, at)?;
            let info = u32_at(types, at + 4)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kflag = info >> 31 == 1;
            at += 12;
            let extra = match kind {
                1 | 14 | 17 => 4,     // int, var, decl_tag
                3 => 12,              // array
                4 | 5 => vlen * 12,   // struct, union
                6 | 13 => vlen * 8,   // enum, func_proto
                15 | 19 => vlen * 12, // datasec, enum64
                _ => 0,
            };
            if kind == 4 || kind == 5 {
                let mut members = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let m = at + i * 12;
                    let off = u32_at(types, m + 8)?;
                    let bits = if kflag { off & 0x00ff_ffff } else { off };
                    members.push((u32_at(types, m)?, u32_at(types, m + 4)?, bits / 8));
                }
                all.push(Some(Composite { name, members }));
            } else {
                all.push(None);
            }
            at += extra;
        }
        let mut out = Layouts::default();
        for c in all.iter().flatten().filter(|c| c.name != 0) {
            let name = str_at(strings, c.name);
            if out.structs.contains_key(&name) {
                continue;
            }
            let mut members = HashMap::new();
            flatten(&all, strings, c, 0, &mut members, 0);
            out.structs.insert(name, members);
        }
        Ok(out)
    }

    /// Byte offset of `member` in `struct name`.
    pub fn offset(&self, name: &str, member: &str) -> Result<u32, BtfError> {
        self.structs
            .get(name)
            .ok_or_else(|| BtfError::NoStruct(name.into()))?
            .get(member)
            .copied()
            .ok_or_else(|| BtfError::NoMember(name.into(), member.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob from type-section words and a string section.
    fn btf_blob(type_words: &[u32], strings: &[u8]) -> Vec<u8> {
        let types: Vec<u8> = type_words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut b = vec![0x9f, 0xeb, 1, 0];
        for x in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.extend_from_slice(&types);
        b.extend_from_slice(strings);
        b
    }

    /// int, and struct s { int a; int b; } with b at bit 32.
    fn blob() -> Vec<u8> {
        btf_blob(
            &[
                1,
                1 << 24,
                4,
                32, // [1] INT "int" size 4
                5,
                (4 << 24) | 2,
                8, // [2] STRUCT "s" vlen 2 size 8
                7,
                1,
                0, // a @0
                9,
                1,
                32, // b @32
            ],
            b"\0int\0s\0a\0b\0",
        )
    }

    #[test]
    fn lifts_anonymous_members() {
        let b = btf_blob(
            &[
                1,
                1 << 24,
                4,
                32, // [1] INT
                0,
                (4 << 24) | 2,
                8,
                7,
                1,
                0,
                9,
                1,
                32, // [2] anon STRUCT { x @0; y @32 }
                5,
                (4 << 24) | 2,
                16,
                11,
                1,
                0,
                0,
                2,
                64, // [3] STRUCT "v" { z @0; anon [2] @64 }
            ],
            b"\0int\0v\0x\0y\0z\0",
        );
        let l = Layouts::parse(&b).unwrap();
        assert_eq!(l.offset("v", "z"), Ok(0));
        assert_eq!(l.offset("v", "x"), Ok(8));
        assert_eq!(l.offset("v", "y"), Ok(12));
    }

    #[test]
    fn finds_member_offsets() {
        let l = Layouts::parse(&blob()).unwrap();
        assert_eq!(l.offset("s", "a"), Ok(0));
        assert_eq!(l.offset("s", "b"), Ok(4));
        assert_eq!(l.offset("s", "c"), Err(BtfError::NoMember("s".into(), "c".into())));
        assert!(matches!(l.offset("t", "a"), Err(BtfError::NoStruct(_))));
        assert!(Layouts::parse(b"junk").is_err());
    }
}
