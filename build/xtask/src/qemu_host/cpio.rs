//! A cpio archive in the "newc" format, the one Linux unpacks as an initramfs (uncompressed,
//! so no `cpio` or `gzip` is needed).

/// An archive being written.
#[derive(Debug)]
pub(super) struct Cpio {
    buf: Vec<u8>,
    next_ino: u32,
}

/// File type bits of `mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;

impl Cpio {
    /// An empty archive.
    pub(super) fn new() -> Self {
        Cpio {
            buf: Vec::new(),
            next_ino: 1,
        }
    }

    /// One entry: the 110-byte header, the name, the data, each padded to 4 bytes.
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let name_size = name.len() + 1;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            u32::try_from(data.len()).expect("an initramfs file under 4 GiB"),
            0,
            0,
            0,
            0,
            u32::try_from(name_size).expect("a short name"),
            0, // check
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// A directory.
    pub(super) fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, &[]);
    }

    /// A regular file with permission bits `perm`.
    pub(super) fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | perm, data);
    }

    /// The archive, with its trailer.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_aligned_and_end_with_the_trailer() {
        let mut c = Cpio::new();
        c.dir("bin");
        c.file("init", 0o755, b"#!/bin/sh\n");
        let a = c.finish();
        assert!(a.starts_with(b"070701"));
        assert_eq!(a.len() % 4, 0);
        // The second header starts after the first entry: 110 + "bin\0" padded to 116.
        assert_eq!(&a[116..122], b"070701");
        let text = String::from_utf8_lossy(&a);
        // mode of init: regular file, rwxr-xr-x; size 10.
        let init = text.find("init\0").unwrap();
        let header = &text[init - 110..init];
        assert_eq!(&header[14..22], "000081ed");
        assert_eq!(&header[54..62], "0000000a");
        assert!(text.contains("#!/bin/sh\n"));
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!\0"));
    }

    #[test]
    fn the_linux_kernel_accepts_the_format() {
        // The header field order the kernel's init/initramfs.c reads (13 fields after the
        // magic); the name size counts the NUL.
        let mut c = Cpio::new();
        c.file("a", 0o644, b"");
        let a = c.finish();
        let hdr = std::str::from_utf8(&a[6..110]).unwrap();
        let field = |i: usize| u32::from_str_radix(&hdr[i * 8..i * 8 + 8], 16).unwrap();
        assert_eq!(field(0), 1, "ino");
        assert_eq!(field(4), 1, "nlink");
        assert_eq!(field(11), 2, "namesize");
    }
}
