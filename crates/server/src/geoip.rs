//! The operator's IP-geolocation database (PRACTICES §10): a MaxMind DB file read once into
//! memory at start-up, and looked up for each sign-in to give `portcullis_core::geo` a
//! [`Place`].
//!
//! Two record layouts are understood, because the two kinds of file an operator can get for
//! free use them:
//! - MaxMind's (GeoLite2 / GeoIP2 Country and City, and the DB-IP "lite" files that copy it):
//!   `country.iso_code`, and for city files `location.latitude`, `location.longitude` and
//!   `location.accuracy_radius` (kilometres);
//! - ip-location-db's: `country_code` at the top level, and for its city files top-level
//!   `latitude` and `longitude` without a radius (see [`ASSUMED_ACCURACY_KM`]).
//!
//! The database is data from outside: every field is read on its own and a field of the wrong
//! type, out of range, or missing is simply absent from the place, never an error or a panic.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{LookupResult, MaxMindDbError, PathElement, Reader, WithinOptions};
use portcullis_core::geo::{Location, Place};
use serde::de::{Deserialize, Deserializer, Visitor};

#[cfg(any(test, feature = "test-geodb"))]
pub mod testdb;

/// The accuracy given to coordinates that come without a radius (ip-location-db's city files):
/// a cautious city-level figure, so that a missing radius does not make two guesses look
/// farther apart than they are. MaxMind's own radii for city-level records are mostly between
/// 5 and 200 km.
pub const ASSUMED_ACCURACY_KM: f64 = 100.0;

/// How many distinct records [`GeoIp::open`] reads to decide the [`GeoMode`]: enough to find
/// coordinates in any city database (nearly all of whose records have them), few enough to
/// cost nothing at start-up.
pub const PROBE_RECORDS: usize = 1_024;

/// The most networks walked while probing, in case a file maps a huge number of networks to
/// a handful of records.
const PROBE_NETWORKS: usize = 65_536;

/// Which geographic detections the server can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeoMode {
    /// No database configured: no geographic detection at all.
    Off,
    /// A database without coordinates: a new country is detected, impossible travel is not.
    CountryOnly,
    /// A database with coordinates: new country and impossible travel.
    City,
}

impl GeoMode {
    /// The detections this mode runs, for logs.
    pub fn detections(self) -> &'static str {
        match self {
            GeoMode::Off => "off",
            GeoMode::CountryOnly => "new country only",
            GeoMode::City => "new country and impossible travel",
        }
    }
}

/// Why a GeoIP database could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeoIpError {
    #[error("reading the GeoIP database {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid MaxMind DB (.mmdb) file: {source}", path.display())]
    Invalid {
        path: PathBuf,
        source: MaxMindDbError,
    },
    #[error(
        "{} ({database_type}) has no country or coordinates in its records: \
         give a country or city database, not an ASN or other kind",
        path.display()
    )]
    NoGeography {
        path: PathBuf,
        database_type: String,
    },
}

/// An open GeoIP database, held in memory.
pub struct GeoIp {
    reader: Reader<Vec<u8>>,
    mode: GeoMode,
}

impl fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoIp")
            .field("database_type", &self.reader.metadata().database_type)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl GeoIp {
    /// Reads the whole file at `path` into memory (the file may be replaced while the server
    /// runs without disturbing it), checks it, and decides its [`GeoMode`].
    ///
    /// The check (`Reader::verify`) walks the whole search tree and every record it points at
    /// once, about a quarter of a second per million networks (a full city database has a few
    /// million): in exchange a truncated download or a file that is not a database is refused
    /// here, with the reason, rather than making every later lookup quietly find nothing.
    ///
    /// The mode is decided by probing, not by the metadata's `database_type`: City when one of
    /// the first [`PROBE_RECORDS`] distinct records (in tree order) has valid coordinates in
    /// either layout, CountryOnly when none does but some has a country. A type name says
    /// little: vendors name their files differently ("GeoLite2-City", "GeoIP2-Enterprise",
    /// "DBIP-City-Lite", ip-location-db's own names) and a file can be stripped of fields
    /// after the fact. A file whose probed records have neither (an ASN database) is refused.
    pub fn open(path: &Path) -> Result<GeoIp, GeoIpError> {
        let bytes = std::fs::read(path).map_err(|source| GeoIpError::Read {
            path: path.to_owned(),
            source,
        })?;
        GeoIp::from_bytes(path, bytes)
    }

    /// [`GeoIp::open`] after the read; `path` is for the errors.
    fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<GeoIp, GeoIpError> {
        let invalid = |source| GeoIpError::Invalid {
            path: path.to_owned(),
            source,
        };
        let reader = Reader::from_source(bytes).map_err(invalid)?;
        reader.verify().map_err(invalid)?;
        let mode = probe(&reader).ok_or_else(|| GeoIpError::NoGeography {
            path: path.to_owned(),
            database_type: reader.metadata().database_type.clone(),
        })?;
        Ok(GeoIp { reader, mode })
    }

    /// [`GeoMode::City`] or [`GeoMode::CountryOnly`] (an open database is never `Off`).
    pub fn mode(&self) -> GeoMode {
        self.mode
    }

    /// The start-up log line: what will be detected and with which file, e.g.
    /// "geographic detection: new country and impossible travel (GeoLite2-City, built
    /// 2026-11-30)".
    pub fn describe(&self) -> String {
        let meta = self.reader.metadata();
        let built = i64::try_from(meta.build_epoch)
            .ok()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .map_or_else(
                || "build date unknown".to_owned(),
                |t| format!("built {}", t.date()),
            );
        let why = match self.mode {
            GeoMode::CountryOnly => "; its records carry no coordinates",
            GeoMode::City | GeoMode::Off => "",
        };
        format!(
            "geographic detection: {} ({}, {built}{why})",
            self.mode.detections(),
            meta.database_type
        )
    }

    /// What the database says about `ip`. An IPv4-mapped IPv6 address (from a dual-stack
    /// listener) is looked up as the IPv4 address it carries. An address the database does not
    /// cover, or cannot be looked up in it (IPv6 in an IPv4-only file), gives a place with
    /// every field `None`.
    pub fn lookup(&self, ip: IpAddr) -> Place {
        match self.reader.lookup(ip.to_canonical()) {
            Ok(found) => place_of(&found),
            Err(_) => Place::default(),
        }
    }
}

/// The mode the first records suggest, `None` when they hold no geography at all.
fn probe(reader: &Reader<Vec<u8>>) -> Option<GeoMode> {
    let networks = reader.networks(WithinOptions::default()).ok()?;
    let mut seen = HashSet::new();
    let mut has_country = false;
    for found in networks.take(PROBE_NETWORKS) {
        let Ok(found) = found else { continue };
        let Some(offset) = found.offset() else {
            continue;
        };
        if !seen.insert(offset) {
            continue;
        }
        let place = place_of(&found);
        if place.location.is_some() {
            return Some(GeoMode::City);
        }
        has_country |= place.country.is_some();
        if seen.len() >= PROBE_RECORDS {
            break;
        }
    }
    has_country.then_some(GeoMode::CountryOnly)
}

fn place_of<S: AsRef<[u8]>>(found: &LookupResult<'_, S>) -> Place {
    if !found.has_data() {
        return Place::default();
    }
    let country = text(found, &[key("country"), key("iso_code")])
        .and_then(|c| country_code(&c))
        .or_else(|| text(found, &[key("country_code")]).and_then(|c| country_code(&c)));
    let location = location(
        found,
        &[key("location"), key("latitude")],
        &[key("location"), key("longitude")],
        Some(&[key("location"), key("accuracy_radius")]),
    )
    .or_else(|| location(found, &[key("latitude")], &[key("longitude")], None));
    Place {
        country,
        location,
        network: found.network().ok().map(|n| n.to_string()),
    }
}

fn key(k: &str) -> PathElement<'_> {
    PathElement::Key(k)
}

fn text<S: AsRef<[u8]>>(found: &LookupResult<'_, S>, path: &[PathElement<'_>]) -> Option<String> {
    found.decode_path::<String>(path).ok().flatten()
}

fn number<S: AsRef<[u8]>>(found: &LookupResult<'_, S>, path: &[PathElement<'_>]) -> Option<f64> {
    found
        .decode_path::<Number>(path)
        .ok()
        .flatten()
        .map(|n| n.0)
        .filter(|x| x.is_finite())
}

/// Coordinates when both are present and on the globe. The radius is MaxMind's
/// `accuracy_radius` when valid, else [`ASSUMED_ACCURACY_KM`].
fn location<S: AsRef<[u8]>>(
    found: &LookupResult<'_, S>,
    latitude: &[PathElement<'_>],
    longitude: &[PathElement<'_>],
    radius: Option<&[PathElement<'_>]>,
) -> Option<Location> {
    let latitude = number(found, latitude).filter(|x| (-90.0..=90.0).contains(x))?;
    let longitude = number(found, longitude).filter(|x| (-180.0..=180.0).contains(x))?;
    let accuracy_km = radius
        .and_then(|path| number(found, path))
        .filter(|r| *r >= 0.0)
        .unwrap_or(ASSUMED_ACCURACY_KM);
    Some(Location {
        latitude,
        longitude,
        accuracy_km,
    })
}

/// An ISO 3166-1 alpha-2 code in upper case; anything else is no country.
fn country_code(s: &str) -> Option<String> {
    let s = s.trim();
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic())).then(|| s.to_ascii_uppercase())
}

/// A number of any of the format's numeric types. The reader's own `f64` accepts doubles only,
/// but coordinates are floats in some files and a radius is an integer: this takes them all.
struct Number(f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Number, D::Error> {
        struct NumberVisitor;

        impl Visitor<'_> for NumberVisitor {
            type Value = Number;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }

            fn visit_f64<E>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }

            fn visit_u64<E>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }

            fn visit_i64<E>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
        }

        deserializer.deserialize_any(NumberVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::testdb::{self, RecordSize, TestDb, Value};
    use super::*;

    fn open(db: &TestDb) -> (tempfile::TempDir, GeoIp) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("geo.mmdb");
        db.write(&path).unwrap();
        let geo = GeoIp::open(&path).unwrap();
        (dir, geo)
    }

    fn open_err(bytes: &[u8]) -> GeoIpError {
        GeoIp::from_bytes(Path::new("/somewhere/bad.mmdb"), bytes.to_vec()).unwrap_err()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_city_database_gives_countries_coordinates_and_networks() {
        for size in [RecordSize::Bits24, RecordSize::Bits28] {
            let (_dir, geo) = open(&testdb::city_fixture().unwrap().record_size(size));
            assert_eq!(geo.mode(), GeoMode::City);
            let paris = geo.lookup(ip("192.0.2.10"));
            assert_eq!(paris.country.as_deref(), Some("FR"));
            assert_eq!(
                paris.location,
                Some(Location {
                    latitude: 48.8566,
                    longitude: 2.3522,
                    accuracy_km: 20.0
                })
            );
            assert_eq!(paris.network.as_deref(), Some("192.0.2.0/24"));
            let osaka = geo.lookup(ip("203.0.113.200"));
            assert_eq!(osaka.country.as_deref(), Some("JP"));
            assert_eq!(osaka.network.as_deref(), Some("203.0.113.128/25"));
            assert_eq!(osaka.location.map(|l| l.latitude), Some(34.6937));
            let tokyo = geo.lookup(ip("203.0.113.1"));
            assert_eq!(tokyo.network.as_deref(), Some("203.0.113.0/25"));
            let sydney = geo.lookup(ip("2001:db8:1:2::3"));
            assert_eq!(sydney.country.as_deref(), Some("AU"));
            assert_eq!(sydney.network.as_deref(), Some("2001:db8:1::/48"));
            assert_eq!(sydney.location.map(|l| l.accuracy_km), Some(100.0));
            assert_eq!(
                geo.lookup(ip("2001:db8:2::1")).country.as_deref(),
                Some("DE")
            );
        }
    }

    #[test]
    fn impossible_travel_between_fixture_places() {
        use portcullis_core::geo::{impossible_travel, Sighting};
        let (_dir, geo) = open(&testdb::city_fixture().unwrap());
        let seen = |at: i64, addr: &str| Sighting {
            at,
            place: geo.lookup(ip(addr)),
            address: addr.to_owned(),
        };
        let t = impossible_travel(&seen(0, "192.0.2.1"), &seen(3600, "198.51.100.1"), 1000.0)
            .expect("Paris to New York in an hour");
        // 5,837 km less the 20 and 10 km radii.
        assert!((t.km - 5807.0).abs() < 6.0, "{t:?}");
        // Two addresses of one database network are never travel.
        assert_eq!(
            impossible_travel(&seen(0, "192.0.2.1"), &seen(1, "192.0.2.200"), 1.0),
            None
        );
    }

    #[test]
    fn unknown_addresses_give_an_empty_place() {
        let (_dir, geo) = open(&testdb::city_fixture().unwrap());
        for addr in ["192.0.3.1", "10.0.0.1", "127.0.0.1", "2001:db8:3::1", "::1"] {
            assert_eq!(geo.lookup(ip(addr)), Place::default(), "{addr}");
        }
    }

    #[test]
    fn ipv4_mapped_addresses_are_looked_up_as_ipv4() {
        let (_dir, geo) = open(&testdb::city_fixture().unwrap());
        let mapped = geo.lookup(ip("::ffff:198.51.100.9"));
        assert_eq!(mapped, geo.lookup(ip("198.51.100.9")));
        assert_eq!(mapped.country.as_deref(), Some("US"));
        assert_eq!(mapped.network.as_deref(), Some("198.51.100.0/24"));
    }

    #[test]
    fn a_maxmind_country_database_is_country_only() {
        let (_dir, geo) = open(&testdb::country_fixture().unwrap());
        assert_eq!(geo.mode(), GeoMode::CountryOnly);
        let place = geo.lookup(ip("203.0.113.200"));
        assert_eq!(place.country.as_deref(), Some("JP"));
        assert_eq!(place.location, None);
        assert_eq!(place.network.as_deref(), Some("203.0.113.0/24"));
        assert_eq!(
            geo.lookup(ip("2001:db8:1::1")).country.as_deref(),
            Some("AU")
        );
        assert_eq!(geo.lookup(ip("198.18.0.1")), Place::default());
    }

    #[test]
    fn an_ip_location_db_country_database_is_country_only() {
        let (_dir, geo) = open(&testdb::ip_location_db_fixture().unwrap());
        assert_eq!(geo.mode(), GeoMode::CountryOnly);
        let place = geo.lookup(ip("192.0.2.1"));
        assert_eq!(place.country.as_deref(), Some("FR"));
        assert_eq!(place.location, None);
        assert_eq!(place.network.as_deref(), Some("192.0.2.0/24"));
        assert_eq!(
            geo.lookup(ip("2001:db8:2::9")).country.as_deref(),
            Some("DE")
        );
        assert!(geo.describe().contains("new country only"));
    }

    #[test]
    fn an_ip_location_db_city_database_has_coordinates_with_an_assumed_radius() {
        let db = TestDb::new("geolite2-city")
            .insert(
                "198.51.100.0/24",
                testdb::ip_location_db_city("us", "New York", 40.7128, -74.006),
            )
            .unwrap();
        let (_dir, geo) = open(&db);
        assert_eq!(geo.mode(), GeoMode::City);
        let place = geo.lookup(ip("198.51.100.1"));
        assert_eq!(place.country.as_deref(), Some("US"));
        assert_eq!(
            place.location,
            Some(Location {
                latitude: 40.7128,
                longitude: -74.006,
                accuracy_km: ASSUMED_ACCURACY_KM
            })
        );
    }

    #[test]
    fn the_mode_comes_from_the_records_not_the_type_name() {
        // Called a city database, but stripped of coordinates.
        let db = TestDb::new("GeoLite2-City")
            .insert("192.0.2.0/24", testdb::maxmind_country("FR"))
            .unwrap();
        let (_dir, geo) = open(&db);
        assert_eq!(geo.mode(), GeoMode::CountryOnly);
        // A neutral name, with coordinates in a record behind many distinct ones without.
        let without = |n: usize| {
            let mut db = TestDb::new("Custom");
            for i in 0..n {
                let record = Value::map([
                    ("country", Value::map([("iso_code", Value::from("DE"))])),
                    ("n", Value::Uint32(i as u32)),
                ]);
                db = db.insert(&format!("2001:db8:{i:x}::/48"), record).unwrap();
            }
            db.insert(
                "2001:db8:ffff::/48",
                testdb::maxmind_city("DE", "Berlin", 52.52, 13.405, 20),
            )
            .unwrap()
        };
        let (_dir, geo) = open(&without(200));
        assert_eq!(geo.mode(), GeoMode::City);
        // The probe is bounded: coordinates only past its first records are not looked for.
        let (_dir, geo) = open(&without(PROBE_RECORDS));
        assert_eq!(geo.mode(), GeoMode::CountryOnly);
        assert!(geo.lookup(ip("2001:db8:ffff::1")).location.is_some());
    }

    #[test]
    fn describe_names_the_detections_the_file_and_its_date() {
        let (_dir, geo) = open(&testdb::city_fixture().unwrap());
        assert_eq!(
            geo.describe(),
            "geographic detection: new country and impossible travel \
             (GeoLite2-City, built 2026-11-30)"
        );
        let (_dir, geo) = open(
            &testdb::country_fixture()
                .unwrap()
                .build_epoch(1_700_000_000),
        );
        assert_eq!(
            geo.describe(),
            "geographic detection: new country only \
             (GeoLite2-Country, built 2023-11-14; its records carry no coordinates)"
        );
        assert_eq!(GeoMode::Off.detections(), "off");
    }

    #[test]
    fn odd_records_give_none_instead_of_failing() {
        let odd = [
            // Wrong types everywhere.
            Value::map([
                ("country", Value::from("FR")),
                ("location", Value::Array(vec![Value::Double(1.0)])),
            ]),
            Value::map([
                ("country", Value::map([("iso_code", Value::Uint16(250))])),
                (
                    "location",
                    Value::map([
                        ("latitude", Value::from("48.8")),
                        ("longitude", Value::Double(2.35)),
                    ]),
                ),
            ]),
            // Out of range or malformed values.
            Value::map([
                ("country", Value::map([("iso_code", Value::from("FRA"))])),
                (
                    "location",
                    Value::map([
                        ("latitude", Value::Double(91.0)),
                        ("longitude", Value::Double(2.35)),
                    ]),
                ),
            ]),
            Value::map([
                ("country_code", Value::from("1x")),
                ("latitude", Value::Double(10.0)),
                ("longitude", Value::Double(-181.0)),
            ]),
            // Not even a map.
            Value::from("FR"),
            Value::Array(vec![Value::from("FR")]),
            Value::map(Vec::<(String, Value)>::new()),
        ];
        let mut db = TestDb::new("GeoLite2-City");
        for (i, record) in odd.iter().enumerate() {
            let net = format!("2001:db8:{}::/48", i + 1);
            db = db.insert(&net, record.clone()).unwrap();
        }
        // One good record so the file is accepted.
        let db = db
            .insert("192.0.2.0/24", testdb::maxmind_country("FR"))
            .unwrap();
        let (_dir, geo) = open(&db);
        for i in 0..odd.len() {
            let place = geo.lookup(ip(&format!("2001:db8:{}::1", i + 1)));
            assert_eq!(place.country, None, "record {i}");
            assert_eq!(place.location, None, "record {i}");
            // The network is still known: the address is in the database.
            let net = format!("2001:db8:{}::/48", i + 1);
            assert_eq!(place.network, Some(net), "record {i}");
        }
    }

    #[test]
    fn lenient_numbers_and_radius() {
        let db = TestDb::new("Custom")
            .insert(
                "192.0.2.0/24",
                Value::map([
                    ("country", Value::map([("iso_code", Value::from(" fr "))])),
                    (
                        "location",
                        Value::map([
                            // A float latitude, an integer longitude, a double radius.
                            ("latitude", Value::Float(48.5)),
                            ("longitude", Value::Uint16(2)),
                            ("accuracy_radius", Value::Double(12.5)),
                        ]),
                    ),
                ]),
            )
            .unwrap()
            .insert(
                "198.51.100.0/24",
                Value::map([(
                    "location",
                    Value::map([
                        ("latitude", Value::Double(40.0)),
                        ("longitude", Value::Double(-74.0)),
                        ("accuracy_radius", Value::from("ten")),
                    ]),
                )]),
            )
            .unwrap();
        let (_dir, geo) = open(&db);
        let p = geo.lookup(ip("192.0.2.1"));
        assert_eq!(p.country.as_deref(), Some("FR"));
        assert_eq!(
            p.location,
            Some(Location {
                latitude: 48.5,
                longitude: 2.0,
                accuracy_km: 12.5
            })
        );
        let p = geo.lookup(ip("198.51.100.1"));
        assert_eq!(p.country, None);
        assert_eq!(p.location.map(|l| l.accuracy_km), Some(ASSUMED_ACCURACY_KM));
    }

    #[test]
    fn a_database_without_geography_is_refused() {
        let db = TestDb::new("GeoLite2-ASN")
            .insert(
                "192.0.2.0/24",
                Value::map([
                    ("autonomous_system_number", Value::Uint32(64_496)),
                    ("autonomous_system_organization", Value::from("Example")),
                ]),
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("asn.mmdb");
        db.write(&path).unwrap();
        let err = GeoIp::open(&path).unwrap_err();
        assert!(matches!(err, GeoIpError::NoGeography { .. }), "{err:?}");
        assert!(err.to_string().contains("GeoLite2-ASN"), "{err}");
        // An empty database likewise.
        let err = open_err(&TestDb::new("Empty").to_bytes().unwrap());
        assert!(matches!(err, GeoIpError::NoGeography { .. }), "{err:?}");
    }

    #[test]
    fn corrupt_files_are_refused_with_a_reason() {
        let good = testdb::city_fixture().unwrap().to_bytes().unwrap();
        let marker = good
            .windows(14)
            .position(|w| w == b"\xAB\xCD\xEFMaxMind.com")
            .unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("text", b"this is not a database\n".to_vec()),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("no metadata", good[..marker + 14].to_vec()),
            ("garbage metadata", {
                let mut b = good[..marker + 14].to_vec();
                b.extend_from_slice(&[0xff; 40]);
                b
            }),
            ("tree cut short", {
                let mut b = good[..100].to_vec();
                b.extend_from_slice(&good[marker..]);
                b
            }),
        ];
        for (what, bytes) in cases {
            let err = open_err(&bytes);
            assert!(matches!(err, GeoIpError::Invalid { .. }), "{what}: {err:?}");
            let text = err.to_string();
            assert!(
                text.contains("bad.mmdb is not a valid MaxMind DB (.mmdb) file: "),
                "{what}: {text}"
            );
        }
    }

    #[test]
    fn no_damaged_byte_makes_it_panic() {
        // Every byte of a small file flipped in turn, and a few other values written over it:
        // each file is refused or opens, and an open one answers lookups, without a panic.
        let good = testdb::city_fixture().unwrap().to_bytes().unwrap();
        let path = Path::new("damaged.mmdb");
        let addrs = [
            "192.0.2.1",
            "203.0.113.200",
            "2001:db8:1::1",
            "::ffff:198.51.100.1",
        ];
        let (mut opened, mut refused) = (0, 0);
        for at in 0..good.len() {
            for value in [good[at] ^ 0xff, 0x00, 0xff, good[at] ^ 0x01] {
                let mut bytes = good.clone();
                bytes[at] = value;
                match GeoIp::from_bytes(path, bytes) {
                    Ok(geo) => {
                        opened += 1;
                        let _ = geo.describe();
                        for a in addrs {
                            let _ = geo.lookup(ip(a));
                        }
                    }
                    Err(e) => {
                        refused += 1;
                        assert!(e.to_string().contains("damaged.mmdb"), "{e}");
                    }
                }
            }
        }
        assert!(
            opened > 0 && refused > 0,
            "{opened} opened, {refused} refused"
        );
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = GeoIp::open(&dir.path().join("absent.mmdb")).unwrap_err();
        assert!(matches!(err, GeoIpError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.mmdb"), "{err}");
    }
}
