//! A writer of tiny MaxMind DB files, **for tests only**: compiled into this crate's own unit
//! tests, and for other crates' tests behind the `test-geodb` feature, which they enable in
//! their dev-dependency on this crate (so a normal build, the binary's included, never
//! contains it).
//!
//! Why hand-written: no real GeoIP data may ship with the project (the free databases' licences
//! forbid bundling or need attribution, and their contents change), so tests build their own
//! fixtures; and the Rust writer crates on crates.io are at 0.1, one with a single release, the
//! other on old dependencies, rather than maintained libraries. The format is small enough to write from its specification: a binary search tree
//! over the 128 bits of an address, a 16-byte zero separator, a data section of typed values,
//! and a metadata map after the `\xAB\xCD\xEFMaxMind.com` marker.
//!
//! What it writes: IPv6 databases (`ip_version` 6) whose IPv4 networks live in `::/96`, the
//! place the format and every reader expect them; records of 24 or 28 bits; values of the
//! types in [`Value`], each distinct record stored once. What it leaves out: pointers inside
//! the data section, the `::ffff:0:0/96` and `2002::/16` aliases of the IPv4 tree (a reader
//! that looks up an IPv4-mapped address must turn it into IPv4 first, as
//! [`super::GeoIp::lookup`] does), and 32-bit records. By convention the fixtures use the
//! documentation ranges only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)
//! with plausible but made-up locations.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

/// The build time the fixtures claim unless told otherwise: 2026-11-30T00:00:00Z.
pub const DEFAULT_BUILD_EPOCH: u64 = 1_795_996_800;

/// A value in a record (or in the metadata).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    String(String),
    Double(f64),
    Float(f32),
    Uint16(u16),
    Uint32(u32),
    Uint64(u64),
    Array(Vec<Value>),
    /// Keys in the order they are written.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// A map from `(key, value)` pairs.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Double(x)
    }
}

impl From<u16> for Value {
    fn from(n: u16) -> Value {
        Value::Uint16(n)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Value {
        Value::Uint32(n)
    }
}

/// The size of one record (one half of a node) in the search tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordSize {
    /// 3 bytes per record, up to 16 777 215.
    Bits24,
    /// 3½ bytes per record, up to 268 435 455: the layout with the shared middle nibble byte.
    Bits28,
}

impl RecordSize {
    fn bits(self) -> u16 {
        match self {
            RecordSize::Bits24 => 24,
            RecordSize::Bits28 => 28,
        }
    }
}

/// Why a fixture could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestDbError {
    #[error("{0:?} is not a network in CIDR notation")]
    BadNetwork(String),
    #[error("{given} has host bits set (the network is {network})")]
    HostBits { given: String, network: String },
    #[error("a /0 network cannot be stored: the root of the tree must be a node")]
    WholeSpace,
    #[error("the database is too large for {0}-bit records")]
    TooLarge(u16),
    #[error("a value of {0} bytes or items is longer than the format allows")]
    TooLong(usize),
    #[error("writing the test database: {0}")]
    Io(#[from] std::io::Error),
}

/// A database being assembled: networks with their records, in insertion order. A network
/// inserted later wins where it overlaps an earlier one, so a /24 inside an earlier /16 carves
/// itself out, and inserting the /16 afterwards would cover the /24 again.
#[derive(Clone, Debug)]
pub struct TestDb {
    database_type: String,
    build_epoch: u64,
    record_size: RecordSize,
    entries: Vec<(IpNet, Value)>,
}

impl TestDb {
    /// An empty database whose metadata says `database_type` (`"GeoLite2-City"`), built at
    /// [`DEFAULT_BUILD_EPOCH`], with 24-bit records.
    pub fn new(database_type: &str) -> TestDb {
        TestDb {
            database_type: database_type.to_owned(),
            build_epoch: DEFAULT_BUILD_EPOCH,
            record_size: RecordSize::Bits24,
            entries: Vec::new(),
        }
    }

    /// The build time written to the metadata, in Unix seconds.
    pub fn build_epoch(mut self, secs: u64) -> TestDb {
        self.build_epoch = secs;
        self
    }

    pub fn record_size(mut self, size: RecordSize) -> TestDb {
        self.record_size = size;
        self
    }

    /// Adds `record` for `network` (`"203.0.113.0/24"`, `"2001:db8:1::/48"`). A bare address
    /// is refused, and so is a network with host bits set: both are usually a typo.
    pub fn insert(mut self, network: &str, record: Value) -> Result<TestDb, TestDbError> {
        let net: IpNet = network
            .parse()
            .map_err(|_| TestDbError::BadNetwork(network.to_owned()))?;
        if net.trunc() != net {
            return Err(TestDbError::HostBits {
                given: network.to_owned(),
                network: net.trunc().to_string(),
            });
        }
        self.entries.push((net, record));
        Ok(self)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TestDbError> {
        let mut data = Vec::new();
        let mut offsets: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut tree = Trie::new();
        for (net, record) in &self.entries {
            let mut encoded = Vec::new();
            encode(record, &mut encoded)?;
            let offset = match offsets.get(&encoded) {
                Some(&o) => o,
                None => {
                    let o = data.len();
                    data.extend_from_slice(&encoded);
                    offsets.insert(encoded, o);
                    o
                }
            };
            let (key, prefix) = key_of(net);
            if prefix == 0 {
                return Err(TestDbError::WholeSpace);
            }
            tree.insert(key, prefix, offset);
        }
        let (nodes, node_count) = tree.layout();
        let bits = self.record_size.bits();
        let max = (1u64 << bits) - 1;
        let record = |c: Slot| -> Result<u32, TestDbError> {
            let n = match c {
                Slot::Empty => node_count as u64,
                Slot::Node(i) => i as u64,
                // Data records point `node_count + 16` past the start of the data section.
                Slot::Data(offset) => node_count as u64 + 16 + offset as u64,
            };
            if n > max {
                return Err(TestDbError::TooLarge(bits));
            }
            u32::try_from(n).map_err(|_| TestDbError::TooLarge(bits))
        };

        let mut out = Vec::new();
        for [left, right] in nodes {
            push_node(&mut out, self.record_size, record(left)?, record(right)?);
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let node_count = u32::try_from(node_count).map_err(|_| TestDbError::TooLarge(bits))?;
        let metadata = Value::map([
            ("binary_format_major_version", Value::Uint16(2)),
            ("binary_format_minor_version", Value::Uint16(0)),
            ("build_epoch", Value::Uint64(self.build_epoch)),
            ("database_type", Value::from(self.database_type.as_str())),
            (
                "description",
                Value::map([(
                    "en",
                    Value::String(format!("Portcullis test fixture ({})", self.database_type)),
                )]),
            ),
            ("ip_version", Value::Uint16(6)),
            ("languages", Value::Array(vec![Value::from("en")])),
            ("node_count", Value::Uint32(node_count)),
            ("record_size", Value::Uint16(bits)),
        ]);
        encode(&metadata, &mut out)?;
        Ok(out)
    }

    /// Writes the file at `path`.
    pub fn write(&self, path: &Path) -> Result<(), TestDbError> {
        std::fs::write(path, self.to_bytes()?)?;
        Ok(())
    }
}

/// Appends one node: two records of 24 bits, big-endian; or of 28 bits as left's low 24 bits,
/// a byte holding the high nibbles of left then right, and right's low 24 bits.
fn push_node(out: &mut Vec<u8>, size: RecordSize, left: u32, right: u32) {
    out.extend_from_slice(&left.to_be_bytes()[1..]);
    if size == RecordSize::Bits28 {
        let middle = (((left >> 24) & 0x0f) << 4) | ((right >> 24) & 0x0f);
        out.push(middle.to_be_bytes()[3]);
    }
    out.extend_from_slice(&right.to_be_bytes()[1..]);
}

/// The 128-bit key and prefix length of a network in the IPv6 tree: an IPv4 network sits in
/// `::/96`, so `203.0.113.0/24` is `::203.0.113.0/120`.
fn key_of(net: &IpNet) -> (u128, u8) {
    match net.addr() {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), net.prefix_len() + 96),
        IpAddr::V6(v6) => (u128::from(v6), net.prefix_len()),
    }
}

/// One half of a node: nothing, another node, or a record at an offset of the data section.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Empty,
    Node(usize),
    Data(usize),
}

/// A binary trie of addresses, node 0 the root.
struct Trie {
    nodes: Vec<[Slot; 2]>,
}

impl Trie {
    fn new() -> Trie {
        Trie {
            nodes: vec![[Slot::Empty; 2]],
        }
    }

    /// Points the `prefix` most significant bits of `key` at `data`. A record met on the way
    /// is pushed down into both halves, so the rest of its network keeps it; a subtree at the
    /// end is replaced (and dropped by [`Trie::layout`]).
    fn insert(&mut self, key: u128, prefix: u8, data: usize) {
        let mut node = 0;
        for depth in 0..prefix {
            let bit = ((key >> (127 - depth)) & 1) as usize;
            if depth + 1 == prefix {
                self.nodes[node][bit] = Slot::Data(data);
                return;
            }
            node = match self.nodes[node][bit] {
                Slot::Node(next) => next,
                inherited => {
                    let next = self.nodes.len();
                    self.nodes.push([inherited; 2]);
                    self.nodes[node][bit] = Slot::Node(next);
                    next
                }
            };
        }
    }

    /// The reachable nodes renumbered in depth-first order (the root stays 0), with their
    /// count.
    fn layout(&self) -> (Vec<[Slot; 2]>, usize) {
        let mut order = Vec::new();
        let mut new_index = vec![None; self.nodes.len()];
        let mut stack = vec![0usize];
        while let Some(n) = stack.pop() {
            new_index[n] = Some(order.len());
            order.push(n);
            for slot in self.nodes[n].iter().rev() {
                if let Slot::Node(child) = slot {
                    stack.push(*child);
                }
            }
        }
        let renumber = |s: Slot| match s {
            Slot::Node(old) => new_index[old].map_or(Slot::Empty, Slot::Node),
            other => other,
        };
        let nodes = order
            .iter()
            .map(|&n| {
                let [l, r] = self.nodes[n];
                [renumber(l), renumber(r)]
            })
            .collect::<Vec<_>>();
        let count = nodes.len();
        (nodes, count)
    }
}

// Type numbers of the data section.
const STRING: u8 = 2;
const DOUBLE: u8 = 3;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const UINT64: u8 = 9;
const ARRAY: u8 = 11;
const FLOAT: u8 = 15;

/// Appends `value` in the data-section encoding: a control byte (type in the top 3 bits, or 0
/// and an extended type byte for types above 7; size in the low 5 bits, with 1 to 3 size bytes
/// for larger sizes), then the payload.
fn encode(value: &Value, out: &mut Vec<u8>) -> Result<(), TestDbError> {
    match value {
        Value::String(s) => encode_str(s, out)?,
        Value::Double(x) => {
            control(out, DOUBLE, 8)?;
            out.extend_from_slice(&x.to_be_bytes());
        }
        Value::Float(x) => {
            control(out, FLOAT, 4)?;
            out.extend_from_slice(&x.to_be_bytes());
        }
        Value::Uint16(n) => unsigned(out, UINT16, u64::from(*n))?,
        Value::Uint32(n) => unsigned(out, UINT32, u64::from(*n))?,
        Value::Uint64(n) => unsigned(out, UINT64, *n)?,
        Value::Array(items) => {
            control(out, ARRAY, items.len())?;
            for item in items {
                encode(item, out)?;
            }
        }
        Value::Map(entries) => {
            control(out, MAP, entries.len())?;
            for (key, value) in entries {
                encode_str(key, out)?;
                encode(value, out)?;
            }
        }
    }
    Ok(())
}

fn encode_str(s: &str, out: &mut Vec<u8>) -> Result<(), TestDbError> {
    control(out, STRING, s.len())?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Unsigned integers take as few big-endian bytes as the value needs (none for zero).
fn unsigned(out: &mut Vec<u8>, ty: u8, n: u64) -> Result<(), TestDbError> {
    let bytes = n.to_be_bytes();
    let skip = (n.leading_zeros() / 8) as usize;
    control(out, ty, bytes.len() - skip)?;
    out.extend_from_slice(&bytes[skip..]);
    Ok(())
}

fn control(out: &mut Vec<u8>, ty: u8, size: usize) -> Result<(), TestDbError> {
    let too_long = || TestDbError::TooLong(size);
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, Vec::new()),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => {
            let n = u16::try_from(size - 285).map_err(|_| too_long())?;
            (30, n.to_be_bytes().to_vec())
        }
        _ => {
            let n = u32::try_from(size - 65_821).map_err(|_| too_long())?;
            if n >= 1 << 24 {
                return Err(too_long());
            }
            (31, n.to_be_bytes()[1..].to_vec())
        }
    };
    if ty <= 7 {
        out.push((ty << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(ty - 7);
    }
    out.extend_from_slice(&extra);
    Ok(())
}

/// A record in MaxMind's City layout: country, city name, and a location whose
/// `accuracy_radius` is in kilometres.
pub fn maxmind_city(
    iso_code: &str,
    city: &str,
    latitude: f64,
    longitude: f64,
    accuracy_km: u16,
) -> Value {
    Value::map([
        (
            "city",
            Value::map([("names", Value::map([("en", city.into())]))]),
        ),
        (
            "continent",
            Value::map([("code", continent_of(iso_code).into())]),
        ),
        ("country", Value::map([("iso_code", iso_code.into())])),
        (
            "location",
            Value::map([
                ("accuracy_radius", accuracy_km.into()),
                ("latitude", latitude.into()),
                ("longitude", longitude.into()),
            ]),
        ),
    ])
}

/// A record in MaxMind's Country layout: no coordinates.
pub fn maxmind_country(iso_code: &str) -> Value {
    Value::map([
        (
            "continent",
            Value::map([("code", continent_of(iso_code).into())]),
        ),
        ("country", Value::map([("iso_code", iso_code.into())])),
        (
            "registered_country",
            Value::map([("iso_code", iso_code.into())]),
        ),
    ])
}

/// A record in the ip-location-db country layout: `country_code` at the top level.
pub fn ip_location_db_country(code: &str) -> Value {
    Value::map([("country_code", code.into())])
}

/// A record in the ip-location-db city layout: `country_code`, `city`, and top-level
/// `latitude`/`longitude` without an accuracy radius.
pub fn ip_location_db_city(code: &str, city: &str, latitude: f64, longitude: f64) -> Value {
    Value::map([
        ("city", city.into()),
        ("country_code", code.into()),
        ("latitude", latitude.into()),
        ("longitude", longitude.into()),
    ])
}

fn continent_of(iso_code: &str) -> &'static str {
    match iso_code {
        "US" | "CA" => "NA",
        "JP" | "SG" => "AS",
        "AU" | "NZ" => "OC",
        _ => "EU",
    }
}

/// A GeoLite2-City-like fixture over the documentation ranges:
///
/// | network | place |
/// |---|---|
/// | 192.0.2.0/24 | Paris, FR (48.8566, 2.3522), 20 km |
/// | 198.51.100.0/24 | New York, US (40.7128, −74.0060), 10 km |
/// | 203.0.113.0/25 | Tokyo, JP (35.6762, 139.6503), 50 km |
/// | 203.0.113.128/25 | Osaka, JP (34.6937, 135.5023), 50 km |
/// | 2001:db8:1::/48 | Sydney, AU (−33.8688, 151.2093), 100 km |
/// | 2001:db8:2::/48 | Berlin, DE (52.5200, 13.4050), 20 km |
///
/// Everything else, including the rest of 2001:db8::/32, is unknown.
pub fn city_fixture() -> Result<TestDb, TestDbError> {
    TestDb::new("GeoLite2-City")
        .insert(
            "192.0.2.0/24",
            maxmind_city("FR", "Paris", 48.8566, 2.3522, 20),
        )?
        .insert(
            "198.51.100.0/24",
            maxmind_city("US", "New York", 40.7128, -74.0060, 10),
        )?
        .insert(
            "203.0.113.0/25",
            maxmind_city("JP", "Tokyo", 35.6762, 139.6503, 50),
        )?
        .insert(
            "203.0.113.128/25",
            maxmind_city("JP", "Osaka", 34.6937, 135.5023, 50),
        )?
        .insert(
            "2001:db8:1::/48",
            maxmind_city("AU", "Sydney", -33.8688, 151.2093, 100),
        )?
        .insert(
            "2001:db8:2::/48",
            maxmind_city("DE", "Berlin", 52.5200, 13.4050, 20),
        )
}

/// A GeoLite2-Country-like fixture (no coordinates) over the same networks as
/// [`city_fixture`], with the same countries.
pub fn country_fixture() -> Result<TestDb, TestDbError> {
    fixture_of("GeoLite2-Country", maxmind_country)
}

/// The same countries in the ip-location-db layout (`country_code`), typed like the free
/// country database that layout comes from.
pub fn ip_location_db_fixture() -> Result<TestDb, TestDbError> {
    fixture_of("geo-whois-asn-country", ip_location_db_country)
}

fn fixture_of(database_type: &str, record: fn(&str) -> Value) -> Result<TestDb, TestDbError> {
    let mut db = TestDb::new(database_type);
    for (net, country) in [
        ("192.0.2.0/24", "FR"),
        ("198.51.100.0/24", "US"),
        ("203.0.113.0/24", "JP"),
        ("2001:db8:1::/48", "AU"),
        ("2001:db8:2::/48", "DE"),
    ] {
        db = db.insert(net, record(country))?;
    }
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use maxminddb::{path, Reader};

    fn reader(db: &TestDb) -> Reader<Vec<u8>> {
        let reader = Reader::from_source(db.to_bytes().unwrap()).unwrap();
        reader.verify().unwrap();
        reader
    }

    fn country(reader: &Reader<Vec<u8>>, ip: &str) -> Option<String> {
        reader
            .lookup(ip.parse().unwrap())
            .unwrap()
            .decode_path(&path!["country", "iso_code"])
            .unwrap()
    }

    #[test]
    fn the_reader_accepts_and_verifies_both_record_sizes() {
        for size in [RecordSize::Bits24, RecordSize::Bits28] {
            let db = city_fixture().unwrap().record_size(size);
            let r = reader(&db);
            let m = r.metadata();
            assert_eq!(m.record_size, size.bits());
            assert_eq!(m.ip_version, 6);
            assert_eq!(m.database_type, "GeoLite2-City");
            assert_eq!(m.build_epoch, DEFAULT_BUILD_EPOCH);
            assert_eq!(m.binary_format_major_version, 2);
            assert_eq!(m.languages, vec!["en".to_owned()]);
            assert_eq!(country(&r, "192.0.2.77").as_deref(), Some("FR"));
            assert_eq!(country(&r, "203.0.113.200").as_deref(), Some("JP"));
            assert_eq!(country(&r, "2001:db8:2:ffff::1").as_deref(), Some("DE"));
            assert_eq!(country(&r, "192.0.3.1"), None);
            assert_eq!(country(&r, "2001:db8:3::1"), None);
        }
    }

    #[test]
    fn nodes_are_laid_out_as_the_format_says() {
        let mut out = Vec::new();
        push_node(&mut out, RecordSize::Bits24, 0x00AB_CDEF, 0x0012_3456);
        assert_eq!(out, [0xAB, 0xCD, 0xEF, 0x12, 0x34, 0x56]);
        let mut out = Vec::new();
        push_node(&mut out, RecordSize::Bits28, 0x0ABC_DEF1, 0x0543_2100);
        assert_eq!(out, [0xBC, 0xDE, 0xF1, 0xA5, 0x43, 0x21, 0x00]);
    }

    #[test]
    fn values_of_every_type_round_trip() {
        let record = Value::map([
            (
                "s",
                Value::from("é and a string longer than twenty-nine bytes, for the size byte"),
            ),
            ("d", Value::Double(-33.8688)),
            ("f", Value::Float(1.5)),
            ("u16", Value::Uint16(0)),
            ("u16b", Value::Uint16(300)),
            ("u32", Value::Uint32(4_000_000_000)),
            ("u64", Value::Uint64(u64::MAX)),
            ("a", Value::Array(vec![Value::from("x"), Value::Uint16(7)])),
            ("long", Value::from("x".repeat(70_000).as_str())),
        ]);
        let db = TestDb::new("Test")
            .insert("198.51.100.0/24", record)
            .unwrap();
        let r = reader(&db);
        let res = r.lookup("198.51.100.1".parse().unwrap()).unwrap();
        let get = |k: &str| res.decode_path::<serde_json::Value>(&path![k]).unwrap();
        assert_eq!(
            get("s").unwrap(),
            "é and a string longer than twenty-nine bytes, for the size byte"
        );
        assert_eq!(get("d").unwrap(), -33.8688);
        assert_eq!(get("f").unwrap(), 1.5);
        assert_eq!(get("u16").unwrap(), 0);
        assert_eq!(get("u16b").unwrap(), 300);
        assert_eq!(get("u32").unwrap(), 4_000_000_000u64);
        assert_eq!(get("u64").unwrap(), u64::MAX);
        assert_eq!(get("a").unwrap(), serde_json::json!(["x", 7]));
        assert_eq!(get("long").unwrap().as_str().map(str::len), Some(70_000));
    }

    #[test]
    fn later_networks_win_where_they_overlap() {
        let db = TestDb::new("Test")
            .insert("198.51.100.0/24", maxmind_country("US"))
            .unwrap()
            .insert("198.51.100.64/26", maxmind_country("CA"))
            .unwrap();
        let r = reader(&db);
        assert_eq!(country(&r, "198.51.100.1").as_deref(), Some("US"));
        assert_eq!(country(&r, "198.51.100.65").as_deref(), Some("CA"));
        assert_eq!(country(&r, "198.51.100.200").as_deref(), Some("US"));
        let net = |ip: &str| {
            r.lookup(ip.parse().unwrap())
                .unwrap()
                .network()
                .unwrap()
                .to_string()
        };
        assert_eq!(net("198.51.100.1"), "198.51.100.0/26");
        assert_eq!(net("198.51.100.65"), "198.51.100.64/26");
        assert_eq!(net("198.51.100.200"), "198.51.100.128/25");

        // Covering the carve-out again replaces it, and the dropped nodes are not written.
        let covered = db.insert("198.51.100.0/24", maxmind_country("MX")).unwrap();
        let r = reader(&covered);
        assert_eq!(country(&r, "198.51.100.65").as_deref(), Some("MX"));
        assert_eq!(r.metadata().node_count, 120);
    }

    #[test]
    fn identical_records_are_stored_once() {
        let one = TestDb::new("Test")
            .insert("192.0.2.0/24", maxmind_country("FR"))
            .unwrap();
        let two = one
            .clone()
            .insert("198.51.100.0/24", maxmind_country("FR"))
            .unwrap();
        let three = two
            .clone()
            .insert("203.0.113.0/24", maxmind_country("JP"))
            .unwrap();
        // The data section lies between the tree and its separator, and the metadata marker.
        let data_len = |db: &TestDb| {
            let nodes = reader(db).metadata().node_count as usize;
            let bytes = db.to_bytes().unwrap();
            let marker = bytes
                .windows(14)
                .position(|w| w == b"\xAB\xCD\xEFMaxMind.com")
                .unwrap();
            marker - (nodes * 6 + 16)
        };
        assert_eq!(data_len(&one), data_len(&two));
        assert!(data_len(&three) > data_len(&two));
    }

    #[test]
    fn bad_input_is_refused_without_panicking() {
        let db = || TestDb::new("Test");
        assert!(matches!(
            db().insert("203.0.113.0", maxmind_country("JP")),
            Err(TestDbError::BadNetwork(_))
        ));
        assert!(matches!(
            db().insert("not a network/8", maxmind_country("JP")),
            Err(TestDbError::BadNetwork(_))
        ));
        match db().insert("203.0.113.5/24", maxmind_country("JP")) {
            Err(TestDbError::HostBits { network, .. }) => assert_eq!(network, "203.0.113.0/24"),
            other => panic!("{other:?}"),
        }
        let whole = db().insert("::/0", maxmind_country("JP")).unwrap();
        assert!(matches!(whole.to_bytes(), Err(TestDbError::WholeSpace)));
        // 0.0.0.0/0 is ::/96, a fine network.
        let all_v4 = db().insert("0.0.0.0/0", maxmind_country("JP")).unwrap();
        let r = reader(&all_v4);
        assert_eq!(country(&r, "8.8.8.8").as_deref(), Some("JP"));
        assert_eq!(country(&r, "2001:db8::1"), None);
    }

    #[test]
    fn an_empty_database_is_valid() {
        let r = reader(&TestDb::new("Empty"));
        assert_eq!(r.metadata().node_count, 1);
        assert!(!r.lookup("192.0.2.1".parse().unwrap()).unwrap().has_data());
    }
}
